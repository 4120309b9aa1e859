"""pip install of the binding into a fresh virtual environment, offline
(Debian's setuptools, --no-build-isolation), and the installed module
reading a store with neither PYTHONPATH nor IMGPACK_LIBRARY: it finds the
library installed in a prefix through the system's loader
(LD_LIBRARY_PATH here; ldconfig's cache for /usr/local)."""
import ctypes.util
import shutil
import subprocess
import textwrap

import pytest

from installed import (INDEX, LIBDIR, SOURCE, VERSION, clean_env, expected,
                       run)

# Reads record INDEX with the Dataset and again from the Loader's batches,
# writes its pixels to a file and prints the version, where the module and
# the library were loaded from, and the label.
READ = textwrap.dedent("""
    import sys
    import imgpack
    store, index, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    image, label = imgpack.Dataset(store)[index]
    loader = imgpack.Loader(store, batch_size=4, shuffle=False,
                            layout="NHWC", dtype="uint8")
    for batch, (images, labels) in enumerate(loader):
        if batch == index // 4:
            assert (images[index % 4] == image).all()
            assert labels[index % 4] == label
    with open(out, "wb") as file:
        file.write(image.tobytes())
    loaded = [line.split()[-1] for line in open("/proc/self/maps")
              if "libimgpack.so" in line]
    print(imgpack.__version__, imgpack.__file__, loaded[0], label)
""")


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A --system-site-packages venv with the binding pip-installed, from
    a copy of python/ (pip builds in place, and leaves build/ behind)."""
    where = tmp_path_factory.mktemp("pip")
    source = where / "python"
    shutil.copytree(SOURCE / "python", source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__"))
    run("/usr/bin/python3", "-m", "venv", "--system-site-packages",
        where / "venv", env=clean_env())
    run(where / "venv" / "bin" / "pip", "install", "--no-build-isolation",
        "--no-index", "--no-cache-dir", "--quiet", source, env=clean_env())
    return where / "venv"


def test_the_installed_module_reads_the_store(venv, install_prefix,
                                              sample_store, tmp_path):
    out = tmp_path / "image.bin"
    libdir = install_prefix / LIBDIR
    line = run(venv / "bin" / "python", "-c", READ, sample_store, INDEX, out,
               cwd=tmp_path, env=clean_env(LD_LIBRARY_PATH=str(libdir)))
    version, module, library, label = line.split()
    assert version == VERSION
    assert module.startswith(str(venv)), "imported the checkout's module"
    assert library.startswith(str(install_prefix)), library
    want_line, want_payload = expected(sample_store)
    assert label == want_line.split()[4]
    assert out.read_bytes() == want_payload


def test_without_a_library_import_says_what_to_do(venv, tmp_path):
    if ctypes.util.find_library("imgpack"):
        pytest.skip("a libimgpack is installed system-wide on this machine")
    done = subprocess.run([venv / "bin" / "python", "-c", "import imgpack"],
                          cwd=tmp_path, env=clean_env(), capture_output=True,
                          text=True)
    assert done.returncode == 1
    assert "ImportError: imgpack: cannot load libimgpack" in done.stderr
    for hint in ("IMGPACK_LIBRARY", "LD_LIBRARY_PATH", "ldconfig"):
        assert hint in done.stderr
