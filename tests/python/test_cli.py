"""The imgpack command's contract: help, misuse, exit statuses, messages."""
import os
import subprocess

from conftest import IMGPACK, REPO_SAMPLE, copy_tree, pack, run_imgpack


def test_help_and_version_go_to_stdout():
    for args in (["--help"], ["pack", "--help"], ["info", "--help"],
                 ["export", "--help"]):
        done = run_imgpack(*args, check=0)
        assert done.stdout.startswith("Usage: imgpack") and not done.stderr
    assert run_imgpack("--version", check=0).stdout.startswith("imgpack 0.")


def test_misuse_exits_2_with_a_hint():
    for args in ([], ["frobnicate"], ["pack"], ["pack", "only-one"],
                 ["pack", "--jobs", "0", "a", "b"],
                 ["pack", "--format", "gif", "a", "b"],
                 ["pack", "--resize", "-1", "a", "b"],
                 ["pack", "--no-such-option", "a", "b"],
                 ["export", "store", "x", "-o", "a.png"],
                 ["export", "store", "0", "-o", "a.gif"]):
        done = run_imgpack(*args, check=2)
        assert done.stderr.startswith("imgpack: ") and "--help" in done.stderr
        assert not done.stdout


def test_missing_source_names_it(tmp_path):
    done = pack(tmp_path / "nowhere", tmp_path / "out", check=1)
    assert f"{tmp_path}/nowhere" in done.stderr


def test_source_without_classes_is_refused(tmp_path):
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.jpg").write_bytes(b"x")
    done = pack(tmp_path / "flat", tmp_path / "out", check=1)
    assert "ImageFolder" in done.stderr


def test_an_existing_store_is_not_overwritten(tmp_path):
    pack(REPO_SAMPLE, tmp_path / "s")
    before = os.path.getmtime(tmp_path / "s" / "data.mdb")
    done = pack(REPO_SAMPLE, tmp_path / "s", check=1)
    assert "already holds a store" in done.stderr
    assert os.path.getmtime(tmp_path / "s" / "data.mdb") == before


def test_unwritable_output_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("")
    done = pack(REPO_SAMPLE, tmp_path / "file", check=1)
    assert f"{tmp_path}/file" in done.stderr
    done = pack(REPO_SAMPLE, tmp_path / "no" / "such" / "dir", check=1)
    assert "cannot create the output directory" in done.stderr


def test_summary_line_counts_everything(tmp_path):
    done = run_imgpack("pack", REPO_SAMPLE, tmp_path / "s", check=0)
    assert done.stdout.startswith("packed 24, rejected 0, skipped 0 in ")
    assert "images/s" in done.stdout


def test_info_describes_the_store(tmp_path):
    import json
    pack(REPO_SAMPLE, tmp_path / "s")
    text = run_imgpack("info", tmp_path / "s", check=0).stdout
    assert "records:    24" in text and "raw, 224x224x3" in text
    info = json.loads(run_imgpack("info", "--json", tmp_path / "s",
                                  check=0).stdout)
    assert info["count"] == 24 and info["complete"] is True
    assert info["classes"] == sorted(os.listdir(REPO_SAMPLE))
    assert info["command"].startswith("imgpack pack --quiet")
    assert run_imgpack("info", tmp_path / "nothing", check=1).stderr


def test_export_writes_the_record_pixels(tmp_path):
    import numpy as np
    from PIL import Image
    from storefile import Store
    pack(REPO_SAMPLE, tmp_path / "s")
    store = Store(tmp_path / "s")
    want = store.record(5).pixels()
    store.close()
    for name in ("r.png", "r.ppm"):
        run_imgpack("export", tmp_path / "s", "5", "-o", tmp_path / name,
                    check=0)
        assert np.array_equal(np.asarray(Image.open(tmp_path / name)), want)
    done = run_imgpack("export", tmp_path / "s", "24", "-o", tmp_path / "x.png",
                       check=1)
    assert "24" in done.stderr


def test_out_dir_at_or_inside_src_is_refused(tmp_path):
    """The store would become a class of SRC (and every resume would find
    the source changed): refused before anything is made, however the path
    is spelled; a sibling whose name starts like SRC's is fine."""
    src = tmp_path / "src"
    copy_tree(REPO_SAMPLE, src)
    (tmp_path / "link").symlink_to(src)
    listing = sorted(p.name for p in src.iterdir())
    for out, why in ((src, "OUT_DIR is SRC itself"),
                     (tmp_path / "link", "OUT_DIR is SRC itself"),
                     (src / "out", "OUT_DIR is inside SRC"),
                     (src / "n01440764" / "out", "OUT_DIR is inside SRC"),
                     (tmp_path / "link" / "out", "OUT_DIR is inside SRC"),
                     (src / ".." / "src" / "out", "OUT_DIR is inside SRC")):
        done = pack(src, out, "--resume", check=1)
        assert why in done.stderr, (out, done.stderr)
        assert sorted(p.name for p in src.iterdir()) == listing
    pack(src, tmp_path / "src2")


def test_option_files_that_are_not_regular_files_are_refused(tmp_path):
    """A FIFO would hold the pack until something writes to it."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for option in ("--list", "--synsets", "--sha256", "--labels",
                   "--class-names"):
        out = tmp_path / option.strip("-")
        done = subprocess.run([IMGPACK, "pack", option, str(fifo),
                               str(REPO_SAMPLE), str(out)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, done.stderr
        assert f"{option} {fifo}: not a regular file but a FIFO" in \
            done.stderr, done.stderr
        assert not out.exists()
    done = pack(REPO_SAMPLE, tmp_path / "out", "--synsets", tmp_path,
                check=1)
    assert "not a regular file but a directory" in done.stderr
    # A FIFO that a sums file lists, or given as SRC, holds nothing up either.
    sums = tmp_path / "SHA256SUMS"
    sums.write_text("0" * 64 + "  fifo\n")
    done = subprocess.run([IMGPACK, "pack", "--sha256", str(sums),
                           str(REPO_SAMPLE), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"{fifo}: listed in {sums}, but not a regular file" in done.stderr
    csv = tmp_path / "digits.csv"
    os.mkfifo(csv)
    done = subprocess.run([IMGPACK, "pack", str(csv), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"{csv}: neither a directory nor a regular file" in done.stderr
    assert not (tmp_path / "out").exists()
