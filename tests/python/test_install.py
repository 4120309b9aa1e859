"""cmake --install into a temporary prefix, and programs outside the tree
built against it: with pkg-config (shared and static) and with
find_package(imgpack). Each reads a record of a packed store, compared
with python-lmdb's reading of it."""
from installed import (BUILD, CONSUMER, LIBDIR, SOURCE, VERSION, cache,
                       check_read_record, clean_env, command_env, run)


def test_the_install_rules_lay_out_the_files(install_prefix):
    headers = {f"include/imgpack/{h.name}"
               for h in (SOURCE / "include" / "imgpack").glob("*.h")}
    want = headers | {
        "include/imgpack/version.h",
        "bin/imgpack",
        f"{LIBDIR}/libimgpack.so",
        f"{LIBDIR}/libimgpack.so.{VERSION.split('.')[0]}",
        f"{LIBDIR}/libimgpack.so.{VERSION}",
        f"{LIBDIR}/libimgpack.a",
        f"{LIBDIR}/pkgconfig/imgpack.pc",
        f"{LIBDIR}/cmake/imgpack/imgpackConfig.cmake",
        f"{LIBDIR}/cmake/imgpack/imgpackConfigVersion.cmake",
        f"{LIBDIR}/cmake/imgpack/imgpackTargets.cmake",
        "share/man/man1/imgpack.1",
        "share/bash-completion/completions/imgpack",
    }
    have = {str(p.relative_to(install_prefix))
            for p in install_prefix.rglob("*") if not p.is_dir()}
    # One more: the targets' file for the build type, e.g. -release.cmake.
    extra = have - want
    assert want <= have and len(extra) == 1, extra
    assert extra.pop().startswith(f"{LIBDIR}/cmake/imgpack/imgpackTargets-")
    share = install_prefix / "share"
    assert ((share / "man/man1/imgpack.1").read_bytes()
            == (BUILD / "imgpack.1").read_bytes())
    assert ((share / "bash-completion/completions/imgpack").read_bytes()
            == (SOURCE / "tools" / "imgpack.bash").read_bytes())


def test_the_installed_command_finds_its_library(install_prefix):
    command = install_prefix / "bin" / "imgpack"
    if cache("CMAKE_INSTALL_PREFIX") != "/usr":
        assert "(RUNPATH)" in run("readelf", "-d", command)
    env = command_env(command, install_prefix / LIBDIR)
    assert run(command, "--version", env=env) == f"imgpack {VERSION}\n"


def pkg_config(prefix, *args):
    return run("pkg-config", *args, "imgpack", env=clean_env(
        PKG_CONFIG_PATH=str(prefix / LIBDIR / "pkgconfig"))).split()


def test_a_program_built_with_pkg_config(install_prefix, sample_store,
                                         tmp_path):
    assert pkg_config(install_prefix, "--modversion") == [VERSION]
    (libdir,) = pkg_config(install_prefix, "--variable=libdir")
    program = tmp_path / "read_record"
    run("cc", "-o", program, CONSUMER / "read_record.c",
        *pkg_config(install_prefix, "--cflags", "--libs"),
        f"-Wl,-rpath,{libdir}")
    check_read_record(program, sample_store, tmp_path, env=clean_env())


def test_a_program_linked_statically_with_pkg_config(install_prefix,
                                                     sample_store, tmp_path):
    """The static library, with what `pkg-config --static` says it
    needs; the program then needs no libimgpack at run time."""
    libs = [flag for flag in pkg_config(install_prefix, "--static", "--libs")
            if flag != "-limgpack"]
    program = tmp_path / "read_record"
    run("cc", "-o", program, CONSUMER / "read_record.c",
        *pkg_config(install_prefix, "--cflags"),
        install_prefix / LIBDIR / "libimgpack.a", *libs)
    assert "libimgpack" not in run("readelf", "-d", program)
    check_read_record(program, sample_store, tmp_path, env=clean_env())


def test_a_program_built_with_find_package(install_prefix, sample_store,
                                           tmp_path):
    build = tmp_path / "build"
    env = clean_env(CMAKE_PREFIX_PATH=str(install_prefix))
    run("cmake", "-S", CONSUMER, "-B", build, env=env)
    run("cmake", "--build", build, env=env)
    check_read_record(build / "read_record", sample_store, tmp_path,
                      env=clean_env())
