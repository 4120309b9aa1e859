"""Sharded packs: under mpirun, as parallel --shard processes, from the
launchers' environment; combined, they equal a single-process pack."""
import os
import shutil
import subprocess

import pytest

from conftest import IMGPACK, REPO_SAMPLE, SAMPLE, catalog, pack, run_imgpack
from storefile import Store

# Rows of the dataset table that say when and how, or which shard.
VOLATILE = ("created", "command", "combined", "shards", "shard")


def shard_values(out, count):
    values = []
    for k in range(count):
        store = Store(out / f"shard-{k}-of-{count}")
        values += [v for _, v in store.values()]
        store.close()
    return values


def assert_same_as_single(out, count, single):
    store = Store(single)
    assert shard_values(out, count) == [v for _, v in store.values()]
    store.close()
    run_imgpack("combine", out, check=0)
    combined, alone = catalog(out), catalog(single)
    assert combined.execute(
        "SELECT idx, class_id, path, src_width, src_height, src_bytes,"
        " stored_bytes, sha256 FROM images ORDER BY idx").fetchall() == \
        alone.execute("SELECT idx, class_id, path, src_width, src_height,"
                      " src_bytes, stored_bytes, sha256 FROM images"
                      " ORDER BY idx").fetchall()
    shards = [s for s, in combined.execute(
        "SELECT shard FROM images ORDER BY idx")]
    assert shards == sorted(shards) and set(shards) == set(range(count))
    for query in ("SELECT * FROM classes ORDER BY class_id",
                  "SELECT position, path, class_id, reason FROM rejects"):
        assert combined.execute(query).fetchall() == \
            alone.execute(query).fetchall()
    keep = "SELECT key, value FROM dataset WHERE key NOT IN (%s) ORDER BY key"
    marks = ",".join("?" * len(VOLATILE))
    assert combined.execute(keep % marks, VOLATILE).fetchall() == \
        alone.execute(keep % marks, VOLATILE).fetchall()
    assert dict(combined.execute("SELECT key, value FROM dataset"))[
        "shards"] == count


@pytest.mark.skipif(shutil.which("mpirun") is None, reason="no mpirun")
def test_mpirun_packs_one_shard_per_rank(tmp_path, sample_pack):
    out = tmp_path / "mpi"
    done = subprocess.run(
        ["mpirun", "-n", "3", "--oversubscribe", "--allow-run-as-root",
         IMGPACK, "pack", "--jobs", "1", str(SAMPLE), str(out)],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    for k in range(3):
        assert f"packing shard {k} of 3 (from OMPI_COMM_WORLD_RANK)" in \
            done.stderr
    assert_same_as_single(out, 3, sample_pack)


def test_parallel_shard_processes(tmp_path, sample_pack):
    out = tmp_path / "four"
    procs = [subprocess.Popen([IMGPACK, "pack", "--quiet", "--jobs", "1",
                               "--shard", f"{k}/4", str(SAMPLE), str(out)])
             for k in range(4)]
    assert [p.wait(timeout=600) for p in procs] == [0] * 4
    assert_same_as_single(out, 4, sample_pack)
    import json
    info = json.loads(run_imgpack("info", "--json", out, check=0).stdout)
    assert (info["count"], info["shards"]) == (300, 4)
    assert info["data_bytes"] > 300 * 224 * 224 * 3


@pytest.mark.parametrize("variables,expected", [
    ({"PMI_RANK": "1", "PMI_SIZE": "2"}, "shard 1 of 2 (from PMI_RANK)"),
    ({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "6",
      "SLURM_ARRAY_TASK_COUNT": "3"}, "shard 1 of 3 (from SLURM_ARRAY_TASK_ID)"),
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "2"},
     "shard 0 of 2 (from SLURM_PROCID)"),
])
def test_launcher_environments(tmp_path, variables, expected):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OMPI_", "PMI_", "SLURM_", "JOB_"))}
    done = subprocess.run([IMGPACK, "pack", str(SAMPLE), str(tmp_path / "o")],
                          capture_output=True, text=True,
                          env={**env, **variables})
    assert done.returncode == 0, done.stderr
    assert expected in done.stderr


def launcher_env(variables):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OMPI_", "PMI_", "SLURM_", "JOB_"))}
    return {**env, **variables}


def slurm_array(task, first, last, step, count):
    return {"SLURM_ARRAY_TASK_ID": str(task),
            "SLURM_ARRAY_TASK_MIN": str(first),
            "SLURM_ARRAY_TASK_MAX": str(last),
            "SLURM_ARRAY_TASK_STEP": str(step),
            "SLURM_ARRAY_TASK_COUNT": str(count)}


def test_slurm_array_with_a_step(tmp_path):
    """--array=3-9:2 runs tasks 3, 5, 7, 9: shards 0 to 3 of 4, and the
    combined shards are the whole sample."""
    out = tmp_path / "stepped"
    for task in (3, 5, 7, 9):
        done = subprocess.run(
            [IMGPACK, "pack", "--jobs", "1", str(REPO_SAMPLE), str(out)],
            capture_output=True, text=True,
            env=launcher_env(slurm_array(task, 3, 9, 2, 4)))
        assert done.returncode == 0, done.stderr
        assert (f"shard {(task - 3) // 2} of 4 (from SLURM_ARRAY_TASK_ID)"
                in done.stderr)
    assert sorted(p.name for p in out.iterdir()) == \
        [f"shard-{k}-of-4" for k in range(4)]
    run_imgpack("combine", out, check=0)
    assert catalog(out).execute("SELECT count(*) FROM images").fetchone() == \
        (len(list(REPO_SAMPLE.rglob("*.JPEG"))),)


@pytest.mark.parametrize("variables,why", [
    (slurm_array(4, 3, 9, 2, 4), "SLURM_ARRAY_TASK_ID=4 is not MIN + k*STEP"),
    (slurm_array(3, 3, 9, 0, 4), "is not MIN + k*STEP"),
    # --array=0,3,7: a list, not a range; COUNT 3 but ids up to 7.
    (slurm_array(3, 0, 7, 1, 3), "are not one evenly stepped range"),
    (slurm_array(9, 3, 9, 2, 3), "are not one evenly stepped range"),
    ({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "3",
      "SLURM_ARRAY_TASK_STEP": "2", "SLURM_ARRAY_TASK_COUNT": "2"},
     "gives shard 2, past the 2 shards"),
    ({"SLURM_ARRAY_TASK_ID": "x1", "SLURM_ARRAY_TASK_COUNT": "2"},
     "not a number"),
])
def test_inconsistent_launcher_variables_are_refused(tmp_path, variables,
                                                     why):
    out = tmp_path / "o"
    done = subprocess.run([IMGPACK, "pack", str(REPO_SAMPLE), str(out)],
                          capture_output=True, text=True,
                          env=launcher_env(variables))
    assert done.returncode == 2, done.stderr
    assert "no consistent shard index in the environment" in done.stderr
    assert why in done.stderr, done.stderr
    assert not out.exists()


def test_kubernetes_index_needs_the_shard_count(tmp_path):
    env = {**os.environ, "JOB_COMPLETION_INDEX": "2"}
    done = subprocess.run([IMGPACK, "pack", str(SAMPLE), str(tmp_path / "o")],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 2
    done = subprocess.run([IMGPACK, "pack", "--shards", "3", str(SAMPLE),
                           str(tmp_path / "o")], capture_output=True,
                          text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "o" / "shard-2-of-3").is_dir()


def test_combine_refuses_missing_and_mismatched_shards(tmp_path):
    out = tmp_path / "s"
    for k in range(3):
        pack(SAMPLE, out, "--shard", f"{k}/3", "--jobs", "1")
    shutil.rmtree(out / "shard-1-of-3")
    done = run_imgpack("combine", out, check=1)
    assert "shard-1-of-3 is missing" in done.stderr
    pack(SAMPLE, out, "--shard", "1/3", "--resize", "288", "--jobs", "1")
    done = run_imgpack("combine", out, check=1)
    assert "shard-1-of-3" in done.stderr and "resize=288" in done.stderr
    assert not (out / "catalog.db").exists()
