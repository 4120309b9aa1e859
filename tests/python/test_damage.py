"""What readers promise about damaged stores (docs/FORMAT.md, "Damage"):
by default every record is checked in full on its first read, so damage
raises instead of being served; labels and every metadata value carry
checksums; payload_crcs ties each record to its index; stores packed
before these checks existed still open and verify. The byte-flip sweep is
test_flips.py."""
import os
import shutil
import sqlite3
import struct
import zlib

import lmdb
import numpy as np
import pytest

import imgpack
from conftest import REPO_SAMPLE, pack, run_imgpack
from storefile import Store, meta_checksum


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    out = tmp_path_factory.mktemp("damage") / "raw"
    pack(REPO_SAMPLE, out, "--jobs", "2")
    return out


@pytest.fixture
def store(packed, tmp_path):
    return shutil.copytree(packed, tmp_path / "store")


def record_offset(store, index):
    """Where record `index`'s payload starts in data.mdb (its value is in
    contiguous overflow pages)."""
    s = Store(store)
    with s.env.begin() as txn:
        value = bytes(txn.get(struct.pack(">Q", index), db=s.records))
    s.close()
    data = (store / "data.mdb").read_bytes()
    at = data.find(value[:4096])
    assert at >= 0 and data.find(value[:4096], at + 1) < 0
    return at + 32


def flip(store, offset):
    """Flips one byte of data.mdb in place (the file, not a copy: a
    reader's map sees it)."""
    with open(store / "data.mdb", "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x55]))


def test_damaged_payloads_raise_by_default(store):
    flip(store, record_offset(store, 5) + 1000)
    with pytest.raises(imgpack.ImgpackError, match="record 5 is corrupt "
                       r"\(payload checksum mismatch\)"):
        imgpack.Reader(store).image(5)
    with pytest.raises(imgpack.ImgpackError, match="record 5"):
        imgpack.Dataset(store)[5]
    loader = imgpack.Loader(store, batch_size=8, shuffle=False)
    with pytest.raises(imgpack.ImgpackError, match="record 5"):
        list(loader)
    # Undamaged records still read; the opt-out serves the damaged one.
    assert imgpack.Reader(store).image(4)[1] == 4
    image, label = imgpack.Reader(store, verify=False).image(5)
    assert label == 5 and image.shape == (224, 224, 3)
    with pytest.raises(ValueError):
        imgpack.Reader(store, verify="sometimes")


def test_checked_records_are_shared_with_forked_children(store):
    # Records are checked once per open reader, whichever process of it
    # read them first: a child's check spares the parent's. Damage done
    # after a record passed is not seen again (a complete store never
    # changes; verify is what rereads everything).
    reader = imgpack.Reader(store)
    pid = os.fork()
    if pid == 0:
        try:
            reader.image(3)
        finally:
            os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    flip(store, record_offset(store, 3) + 1000)
    flip(store, record_offset(store, 7) + 1000)
    reader.image(3, copy=True)  # checked by the child, not again
    with pytest.raises(imgpack.ImgpackError, match="record 7"):
        reader.image(7)
    with pytest.raises(imgpack.ImgpackError, match="record 3"):
        imgpack.Reader(store).image(3)  # a new reader checks anew


def put_meta(store, key, value, checksum):
    env = lmdb.open(str(store), max_dbs=2)
    with env.begin(write=True) as txn:
        db = env.open_db(b"meta", txn=txn, create=False)
        txn.put(key, value, db=db)
        if checksum:
            txn.put(b"crc/" + key, meta_checksum(key, value), db=db)
    env.close()


def test_damaged_labels_never_reach_a_trainer(store):
    labels = bytearray(Store(store).meta("labels"))
    labels[4 * 6] = 9  # record 6 now says class 9
    put_meta(store, b"labels", bytes(labels), checksum=False)
    with pytest.raises(imgpack.ImgpackError,
                       match='metadata "labels" fails its checksum'):
        imgpack.Dataset(store)
    # Forged with a matching checksum, the record's own header disagrees.
    put_meta(store, b"labels", bytes(labels), checksum=True)
    ds = imgpack.Dataset(store)
    with pytest.raises(imgpack.ImgpackError,
                       match="label 6, the labels metadata says 9"):
        ds[6]


def test_a_record_filed_under_another_index_is_refused(store):
    # What a damaged leaf can do: record 4's value under key 3, its header
    # made to claim record 3's label. Only payload_crcs can tell.
    env = lmdb.open(str(store), max_dbs=2, map_size=1 << 30)
    with env.begin(write=True) as txn:
        db = env.open_db(b"records", txn=txn, create=False)
        value = bytearray(txn.get(struct.pack(">Q", 4), db=db))
        struct.pack_into("<I", value, 16, 3)
        struct.pack_into("<I", value, 28, zlib.crc32(bytes(value[:28])))
        txn.put(struct.pack(">Q", 3), bytes(value), db=db)
    env.close()
    with pytest.raises(imgpack.ImgpackError,
                       match="record 3 is not the record packed at this "
                             "index"):
        imgpack.Reader(store).image(3)
    assert run_imgpack("verify", store).returncode == 4


def make_old(store, complete=True):
    """The store as imgpack wrote it before metadata checksums,
    payload_crcs and catalog_digest: none of those keys (and, with
    `complete` false, stopped after its last batch)."""
    env = lmdb.open(str(store), max_dbs=2)
    with env.begin(write=True) as txn:
        db = env.open_db(b"meta", txn=txn, create=False)
        keys = [bytes(k) for k, _ in txn.cursor(db=db)]
        for key in keys:
            if key.startswith(b"crc/") or key in (b"payload_crcs",
                                                  b"catalog_digest"):
                txn.delete(key, db=db)
        if not complete:
            txn.delete(b"labels", db=db)
            txn.put(b"state", b"packing", db=db)
    env.close()


def test_resuming_an_old_store_checksums_all_of_it(store):
    make_old(store, complete=False)
    db = sqlite3.connect(store / "catalog.db")
    with db:
        db.execute("UPDATE dataset SET value = 'packing' WHERE key = 'state'")
    db.close()
    pack(REPO_SAMPLE, store, "--resume", "--jobs", "2")
    names = {bytes(k) for k, _ in lmdb_items(store)}
    assert b"crc/format_version" in names and b"crc/class/00000000" in names
    assert b"payload_crcs" in names and b"catalog_digest" not in names
    assert imgpack.Dataset(store)[3][1] == 3
    run_imgpack("verify", store, check=0)


def lmdb_items(store):
    env = lmdb.open(str(store), readonly=True, lock=False, max_dbs=2)
    with env.begin() as txn:
        items = [(bytes(k), bytes(v)) for k, v in
                 txn.cursor(db=env.open_db(b"meta", txn=txn, create=False))]
    env.close()
    return items


def test_stores_without_checksums_read_as_before(store):
    make_old(store)
    ref = Store(store)
    ds = imgpack.Dataset(store)
    for i in (0, 11, 23):
        assert np.array_equal(ds[i][0], ref.record(i).pixels())
    ref.close()
    done = run_imgpack("verify", store, check=0)
    assert done.stdout.splitlines()[-1].endswith("0 problems")
    # The payload CRC is still checked by default.
    flip(store, record_offset(store, 2) + 10)
    with pytest.raises(imgpack.ImgpackError, match="record 2"):
        imgpack.Reader(store).image(2)
