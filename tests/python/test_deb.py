"""cpack -G DEB: the package holds what the install rules install, its
Depends name the packages of the libraries the binaries link (as the
system's dpkg knows them), and its contents work where they are unpacked.
Nothing is installed system-wide: a system libimgpack would shadow the
build tree's in every later run."""
import os
import re
import shutil
import subprocess

import pytest

from installed import (BUILD, CONSUMER, check_read_record, clean_env,
                       command_env, run)


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    for tool in ("cpack", "dpkg-deb", "dpkg-shlibdeps"):
        assert shutil.which(tool), (
            f"{tool} is missing: scripts/install-deps.sh --test installs it")
    where = tmp_path_factory.mktemp("deb")
    run("cpack", "-G", "DEB", "--config", BUILD / "CPackConfig.cmake",
        "-B", where, env=clean_env())
    (package,) = where.glob("imgpack_*.deb")
    return package


def debian_package_of(library_path):
    """The installed Debian package that holds a library file. dpkg knows
    each file by the path its package gives, /lib or /usr/lib (merged /usr
    makes them the same directory), and maybe by a link's name."""
    paths = []
    for path in (library_path, os.path.realpath(library_path)):
        paths += [path, re.sub(r"^/usr/", "/", path), "/usr" + path]
    for path in paths:
        done = subprocess.run(["dpkg", "-S", path], capture_output=True,
                              text=True)
        if done.returncode == 0:
            return done.stdout.split(":")[0]
    raise AssertionError(f"no Debian package holds {library_path}")


def linked_packages(*binaries):
    """The packages of the shared libraries `binaries` link themselves
    (their NEEDED entries, found where the loader finds them), libimgpack
    (the package itself) aside."""
    packages = set()
    for binary in binaries:
        needed = re.findall(r"\(NEEDED\).*\[(.*)\]",
                            run("readelf", "-d", binary))
        found = dict(re.findall(r"^\s*(\S+) => (\S+)", run("ldd", binary),
                                re.M))
        packages |= {debian_package_of(found[name]) for name in needed
                     if not name.startswith("libimgpack")}
    return packages


def test_the_package_holds_what_the_install_rules_install(deb, tmp_path):
    # The package's prefix is /usr; its files are relocatable, so the same
    # rules into <stage>/usr give the same files.
    stage = tmp_path / "stage"
    run("cmake", "--install", BUILD, "--prefix", stage / "usr",
        env=clean_env())
    installed = {"/" + str(p.relative_to(stage)) for p in stage.rglob("*")
                 if not p.is_dir()}
    listing = run("dpkg-deb", "--contents", deb)
    packaged = {line.split()[5].lstrip(".") for line in listing.splitlines()
                if not line.startswith("d")}
    assert packaged == installed


def test_depends_names_the_runtime_libraries(deb):
    fields = run("dpkg-deb", "--field", deb, "Package", "Depends",
                 "Recommends")
    depends = re.search(r"^Depends: (.*)$", fields, re.M).group(1)
    names = {d.split()[0] for d in depends.split(", ")}
    assert names == linked_packages(BUILD / "imgpack", BUILD / "libimgpack.so")
    # libarchive is loaded only to read archives (src/sources/libarchive.c).
    libarchive = run("/sbin/ldconfig", "-p")
    path = re.search(r"libarchive\.so\.13 .*=> (\S+)", libarchive).group(1)
    assert re.search(r"^Recommends: (.*)$", fields, re.M).group(1) \
        == debian_package_of(path)


def test_the_unpacked_package_works(deb, sample_store, tmp_path):
    """Its command, and a program built with its pkg-config file, run from
    where the package is unpacked (both are relocatable)."""
    root = tmp_path / "root"
    run("dpkg-deb", "-x", deb, root)
    usr = root / "usr"
    (pc,) = usr.glob("lib/**/pkgconfig/imgpack.pc")
    command = usr / "bin" / "imgpack"
    assert run(command, "--version", env=command_env(
        command, pc.parent.parent)).startswith("imgpack ")
    env = clean_env(PKG_CONFIG_PATH=str(pc.parent))
    flags = run("pkg-config", "--cflags", "--libs", "imgpack", env=env).split()
    program = tmp_path / "read_record"
    run("cc", "-o", program, CONSUMER / "read_record.c", *flags,
        f"-Wl,-rpath,{pc.parent.parent}", env=env)
    check_read_record(program, sample_store, tmp_path, env=clean_env())


def test_apt_would_install_it(deb):
    """apt's simulation (it changes nothing) resolves its dependencies."""
    if not shutil.which("apt-get"):
        pytest.skip("no apt-get")
    done = subprocess.run(["apt-get", "install", "--simulate", str(deb)],
                          capture_output=True, text=True, env=clean_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^Inst imgpack ", done.stdout, re.M), done.stdout
