"""What the install tests share: the build tree, installing it, and
checking what an outside program read (the fixtures sample_store and
install_prefix are in conftest.py).

The outside program is tests/install/read_record.c; it writes the payload
of record INDEX to a file and prints "count width height channels label
format version". python-lmdb reading the store by docs/FORMAT.md
(storefile.py) is the reference.
"""
import os
import pathlib
import subprocess

from storefile import Store

BUILD = pathlib.Path(os.environ.get("IMGPACK_BUILD_DIR", "build"))
SOURCE = pathlib.Path(os.environ.get("IMGPACK_SOURCE_DIR", "."))
CONSUMER = SOURCE / "tests" / "install"
VERSION = (SOURCE / "python" / "imgpack" / "VERSION").read_text().strip()


def cache(name):
    """A variable of the build's CMakeCache.txt."""
    for line in (BUILD / "CMakeCache.txt").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split("=", 1)[1]
    raise KeyError(name)


LIBDIR = cache("CMAKE_INSTALL_LIBDIR")
INDEX = 5


def run(*args, **kwargs):
    """Runs a command that must succeed; returns its stdout."""
    done = subprocess.run([str(a) for a in args], capture_output=True,
                          text=True, **kwargs)
    assert done.returncode == 0, (
        f"{' '.join(map(str, args))}: exit {done.returncode}\n"
        f"{done.stdout}\n{done.stderr}")
    return done.stdout


def clean_env(**extra):
    """The environment without the test suite's ways of finding the
    library and the binding, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "IMGPACK_LIBRARY", "LD_LIBRARY_PATH",
                        "LD_PRELOAD", "PKG_CONFIG_PATH", "CMAKE_PREFIX_PATH")}
    env.update(extra)
    return env


def command_env(command, libdir):
    """The environment to run an installed `command` in: a clean one when
    it finds its library by its RUNPATH (relative to itself), which it
    has unless the build was configured for a prefix the loader searches
    anyway (/usr); then LD_LIBRARY_PATH=libdir."""
    if "(RUNPATH)" in run("readelf", "-d", command):
        return clean_env()
    return clean_env(LD_LIBRARY_PATH=str(libdir))


def install(prefix):
    run("cmake", "--install", BUILD, "--prefix", prefix)
    return prefix


def expected(store):
    """What read_record prints for record INDEX, and its payload."""
    ref = Store(store)
    try:
        record = ref.record(INDEX)
        line = (f"{len(ref)} {record.width} {record.height} "
                f"{record.channels} {record.label} {record.format} {VERSION}")
        return line, record.payload
    finally:
        ref.close()


def check_read_record(program, store, tmp_path, env=None):
    """Runs an outside read_record on `store`; it must read what
    python-lmdb reads."""
    out = tmp_path / "payload.bin"
    line = run(program, store, INDEX, out, env=env).strip()
    want_line, want_payload = expected(store)
    assert line == want_line
    assert out.read_bytes() == want_payload
