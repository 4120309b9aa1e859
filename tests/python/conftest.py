"""Shared fixtures: the imgpack command, packing, and torchvision's reference."""
import os
import pathlib
import shutil
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from storefile import Store  # noqa: E402

IMGPACK = os.environ.get("IMGPACK_BIN", "build/imgpack")
SAMPLE = pathlib.Path(os.environ.get("IMGPACK_SAMPLE_DIR",
                                     "../shared/data/imagenet-sample"))
REPO_SAMPLE = pathlib.Path(os.environ.get("IMGPACK_REPO_SAMPLE_DIR",
                                          "examples/sample"))


def run_imgpack(*args, check=None):
    """Runs the imgpack command; returns the CompletedProcess."""
    done = subprocess.run([IMGPACK, *map(str, args)], capture_output=True,
                          text=True, errors="replace")
    if check is not None:
        assert done.returncode == check, (
            f"exit {done.returncode}, wanted {check}\n{done.stdout}\n"
            f"{done.stderr}")
    return done


def pack(src, out, *options, check=0):
    return run_imgpack("pack", "--quiet", *options, src, out, check=check)


def reference(path, resize=256, crop=224):
    """torchvision's Resize + CenterCrop on PIL's RGB image, as uint8 HWC."""
    from PIL import Image
    from torchvision import transforms
    steps = []
    if resize:
        steps.append(transforms.Resize(resize))
    if crop:
        steps.append(transforms.CenterCrop(crop))
    image = Image.open(path).convert("RGB")
    return np.asarray(transforms.Compose(steps)(image))


def catalog(store_dir):
    db = sqlite3.connect(f"file:{store_dir}/catalog.db?mode=ro", uri=True)
    db.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
    return db


@pytest.fixture
def open_store():
    opened = []

    def open_(path):
        store = Store(path)
        opened.append(store)
        return store
    yield open_
    for store in opened:
        store.close()


@pytest.fixture(scope="session")
def sample_pack(tmp_path_factory):
    """The shared 300-image sample packed once with default options."""
    out = tmp_path_factory.mktemp("sample") / "store"
    pack(SAMPLE, out, "--jobs", "2")
    return out


def copy_tree(src, dst):
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory):
    """examples/sample packed with default options, once per module."""
    out = tmp_path_factory.mktemp("repo-sample") / "store"
    pack(REPO_SAMPLE, out, "--jobs", "2")
    return out


@pytest.fixture(scope="module")
def install_prefix(tmp_path_factory):
    """The build installed (cmake --install) into a fresh prefix, once
    per module (installed.py)."""
    from installed import install
    return install(tmp_path_factory.mktemp("prefix"))
