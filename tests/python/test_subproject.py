"""imgpack as a subproject (add_subdirectory, as FetchContent does): an
outside project builds it and links imgpack::imgpack, with imgpack's
tests and benchmarks off since nobody asked for them."""
from installed import CONSUMER, SOURCE, check_read_record, clean_env, run


def test_an_outside_project_builds_imgpack_as_a_subproject(sample_store,
                                                           tmp_path):
    build = tmp_path / "build"
    env = clean_env()
    run("cmake", "-S", CONSUMER, "-B", build, f"-DIMGPACK_SOURCE_DIR={SOURCE}",
        env=env)
    settings = (build / "CMakeCache.txt").read_text()
    assert "IMGPACK_TESTS:BOOL=OFF" in settings
    assert "IMGPACK_BENCH:BOOL=OFF" in settings
    assert not (build / "imgpack" / "tests").exists()
    run("cmake", "--build", build, "-j", "2", env=env)
    # imgpack's outputs stay in its own binary directory.
    assert (build / "imgpack" / "libimgpack.so").exists()
    assert (build / "imgpack" / "imgpack").exists()
    assert not list(build.glob("bench_*"))
    assert not list((build / "imgpack").glob("bench_*"))
    check_read_record(build / "read_record", sample_store, tmp_path, env=env)
