"""examples/train.py end to end on CPU: the bundled sample packed as a
train store (--crop 0) and a val store (center crops), two steps of
resnet18 at 64 px, a checkpoint holding the Loader's state, and a resumed
run that takes the next step from it."""
import os
import pathlib
import subprocess
import sys

import torch

from conftest import REPO_SAMPLE, pack

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples/train.py"


def train(*args):
    env = dict(os.environ, OMP_NUM_THREADS="2")
    env.pop("WORLD_SIZE", None)
    done = subprocess.run([sys.executable, str(EXAMPLE), *map(str, args)],
                          capture_output=True, text=True, env=env,
                          timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_two_steps_then_resume(tmp_path):
    pack(REPO_SAMPLE, tmp_path / "train", "--crop", "0", "--jobs", "2")
    pack(REPO_SAMPLE, tmp_path / "val", "--resize", "73", "--crop", "64",
         "--jobs", "2")
    checkpoint = tmp_path / "ckpt.pt"
    common = [tmp_path / "train", tmp_path / "val", "--arch", "resnet18",
              "--crop", "64", "--batch-size", "8", "--threads", "2",
              "--checkpoint", checkpoint, "--print-every", "1"]
    out = train(*common, "--max-steps", "2", "--amp")
    assert "step 2 loss" in out and "val top1" in out
    state = torch.load(checkpoint)
    assert state["step"] == 2 and state["epoch"] == 0
    # 24 records, 8 per batch: two batches in, 16 samples of epoch 0.
    assert len(state["loaders"]) == 1
    assert state["loaders"][0]["epoch"] == 0
    assert state["loaders"][0]["position"] == 16
    assert "fc.weight" in state["model"]
    out = train(*common, "--max-steps", "3", "--resume")
    assert "step 3 loss" in out
    state = torch.load(checkpoint)
    assert state["step"] == 3 and state["loaders"][0]["position"] == 24
