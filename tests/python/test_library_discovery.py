"""Where the binding finds libimgpack (python/imgpack/_lib.py), in a
made-up source checkout: its build/ directory, never another build tree,
never a sanitizer build by itself (loading one would end the interpreter:
"ASan runtime does not come first"), only the version the package was
made for, and IMGPACK_LIBRARY above all."""
import ctypes.util
import os
import shutil
import subprocess

import pytest

from installed import SOURCE, VERSION, clean_env, run

# Prints the file libimgpack was loaded from.
WHICH = ("import imgpack\n"
         "print([l.split()[-1] for l in open('/proc/self/maps')\n"
         "       if 'libimgpack' in l][0])\n")


@pytest.fixture(scope="module")
def libraries(tmp_path_factory):
    """The real library, and two stand-ins exporting imgpack_version: one
    of another version, one of this version built with ASan."""
    where = tmp_path_factory.mktemp("libraries")
    real = where / "real" / "libimgpack.so.0"
    real.parent.mkdir()
    shutil.copy(os.environ["IMGPACK_LIBRARY"], real)
    source = where / "version.c"
    source.write_text(
        "const char *imgpack_version(void);\n"
        "const char *imgpack_version(void) { return VERSION; }\n")
    other = where / "other.so"
    run("cc", "-shared", "-fPIC", '-DVERSION="9.9.9"', "-o", other, source)
    asan = where / "asan.so"
    run("cc", "-shared", "-fPIC", "-fsanitize=address",
        f'-DVERSION="{VERSION}"', "-o", asan, source)
    return {"real": real, "other": other, "asan": asan}


def checkout(root, **trees):
    """A source checkout at `root` with this binding, and each of `trees`
    (directory name → library file) as <root>/<name>/libimgpack.so."""
    (root / "include" / "imgpack").mkdir(parents=True)
    (root / "include" / "imgpack" / "imgpack.h").touch()
    shutil.copytree(SOURCE / "python" / "imgpack", root / "python" / "imgpack",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name, library in trees.items():
        (root / name).mkdir()
        shutil.copy(library, root / name / "libimgpack.so")
    return root


def import_imgpack(root, **env):
    return subprocess.run(["/usr/bin/python3", "-c", WHICH],
                          cwd=root.parent, capture_output=True, text=True,
                          env=clean_env(PYTHONPATH=str(root / "python"),
                                        **env))


def no_system_library():
    if ctypes.util.find_library("imgpack"):
        pytest.skip("a libimgpack is installed system-wide on this machine")


def test_a_checkout_loads_its_build_directory(libraries, tmp_path):
    root = checkout(tmp_path / "repo", build=libraries["real"])
    done = import_imgpack(root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(root / "build" / "libimgpack.so")


def test_other_build_trees_are_never_picked(libraries, tmp_path):
    no_system_library()
    root = checkout(tmp_path / "repo", **{"build-release": libraries["real"]})
    done = import_imgpack(root)
    assert done.returncode == 1
    assert "ImportError: imgpack: cannot load libimgpack" in done.stderr
    for hint in ("IMGPACK_LIBRARY", "LD_LIBRARY_PATH", "build/"):
        assert hint in done.stderr


def test_a_sanitizer_build_is_passed_over(libraries, tmp_path):
    no_system_library()
    root = checkout(tmp_path / "repo", build=libraries["asan"])
    done = import_imgpack(root)
    assert done.returncode == 1, "not an ImportError: " + done.stderr
    assert "ImportError" in done.stderr
    assert f"{root}/build/libimgpack.so was built with asan" in done.stderr
    # ... for the installed library, when there is one.
    done = import_imgpack(root,
                          LD_LIBRARY_PATH=str(libraries["real"].parent))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(libraries["real"])


def test_only_the_packages_version_loads(libraries, tmp_path):
    root = checkout(tmp_path / "repo", build=libraries["other"])
    done = import_imgpack(root)
    assert done.returncode == 1
    assert (f"ImportError: imgpack: the library of this checkout "
            f"({root}/build/libimgpack.so) is version 9.9.9, but this "
            f"imgpack package is {VERSION}") in done.stderr
    done = import_imgpack(root, IMGPACK_LIBRARY=str(libraries["other"]))
    assert done.returncode == 1
    assert "named by IMGPACK_LIBRARY" in done.stderr
    assert "is version 9.9.9" in done.stderr


def test_imgpack_library_comes_first(libraries, tmp_path):
    root = checkout(tmp_path / "repo", build=libraries["other"])
    done = import_imgpack(root, IMGPACK_LIBRARY=str(libraries["real"]))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(libraries["real"])
