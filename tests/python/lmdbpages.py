"""LMDB's on-disk pages, enough to aim damage at a store's B-trees.

The layout is liblmdb 0.9's on a 64-bit machine (mdb.c): 4096-byte pages,
each starting with a 16-byte header (pgno u64, pad u16, flags u16, then
lower/upper u16 or an overflow page count u32); pages 0 and 1 are meta
pages, the one with the larger txnid current; branch and leaf pages hold
an array of u16 node offsets after the header, each node an 8-byte header
(lo, hi, flags, key size; u16 each) and its key, then (leaf) its data.
"""
import struct

PAGE = 4096
HEADER = 16
P_BRANCH, P_LEAF, P_OVERFLOW, P_META = 0x01, 0x02, 0x04, 0x08
F_BIGDATA, F_SUBDATA = 0x01, 0x02
# MDB_meta after the page header: magic, version, address, mapsize, then
# two MDB_db (free, main) of 48 bytes, last page, txnid.
META_DBS = HEADER + 24
DB_SIZE = 48
DB_ROOT = 40  # md_root within an MDB_db
META_END = META_DBS + 2 * DB_SIZE + 16


def current_meta(data):
    """The page number (0 or 1) of the meta page LMDB uses."""
    txnids = [struct.unpack_from("<Q", data, p * PAGE + META_END - 8)[0]
              for p in (0, 1)]
    return 0 if txnids[0] >= txnids[1] else 1


def nodes(data, pgno):
    """(offset of node, flags, key, data offset, data size or child) for
    each node of branch or leaf page `pgno`."""
    base = pgno * PAGE
    flags, lower = struct.unpack_from("<HH", data, base + 10)
    out = []
    for i in range((lower - HEADER) // 2):
        ptr, = struct.unpack_from("<H", data, base + HEADER + 2 * i)
        at = base + ptr
        lo, hi, nflags, ksize = struct.unpack_from("<HHHH", data, at)
        key = bytes(data[at + 8:at + 8 + ksize])
        if flags & P_BRANCH:
            out.append((at, nflags, key, None, lo | hi << 16 | nflags << 32))
        else:
            out.append((at, nflags, key, at + 8 + ksize, lo | hi << 16))
    return out


def walk(data, root):
    """Every (pgno, flags) of the tree under `root`, overflow pages too."""
    pages, todo = [], [root]
    while todo:
        pgno = todo.pop()
        if pgno == 0xFFFFFFFFFFFFFFFF or (pgno + 1) * PAGE > len(data):
            continue
        flags, = struct.unpack_from("<H", data, pgno * PAGE + 10)
        pages.append((pgno, flags))
        for at, nflags, key, data_at, value in nodes(data, pgno):
            if flags & P_BRANCH:
                todo.append(value)
            elif nflags & F_BIGDATA:
                over, = struct.unpack_from("<Q", data, data_at)
                pages.append((over, P_OVERFLOW))
    return pages


def named_dbs(data):
    """{name: offset of its MDB_db} from the main database's leaf."""
    meta = current_meta(data)
    root, = struct.unpack_from(
        "<Q", data, meta * PAGE + META_DBS + DB_SIZE + DB_ROOT)
    return {key: data_at for at, nflags, key, data_at, size
            in nodes(data, root) if nflags & F_SUBDATA}, root


def structure(data):
    """Byte offsets of LMDB's own structure in a data.mdb image, by kind:
    the meta pages' fields, page headers, node offset arrays, node headers
    and keys, overflow page numbers, named databases' records, and all of
    that again for branch pages alone. Flipping a byte of these damages
    the B-trees rather than a value."""
    kinds = {"meta": [], "header": [], "pointers": [], "node": [],
             "overflow_pgno": [], "db_record": [], "branch": []}
    for p in (0, 1):
        kinds["meta"] += range(p * PAGE + HEADER, p * PAGE + META_END)
    dbs, main_root = named_dbs(data)
    roots = [main_root]
    for name, at in dbs.items():
        kinds["db_record"] += range(at, at + DB_SIZE)
        roots.append(struct.unpack_from("<Q", data, at + DB_ROOT)[0])
    for root in roots:
        for pgno, flags in walk(data, root):
            base = pgno * PAGE
            kinds["header"] += range(base, base + HEADER)
            if flags & P_OVERFLOW:
                continue
            lower, = struct.unpack_from("<H", data, base + 12)
            kinds["pointers"] += range(base + HEADER, base + lower)
            for at, nflags, key, data_at, value in nodes(data, pgno):
                kinds["node"] += range(at, at + 8 + len(key))
                if flags & P_BRANCH:
                    kinds["branch"] += range(at, at + 8 + len(key))
                if data_at is not None and nflags & F_BIGDATA:
                    kinds["overflow_pgno"] += range(data_at, data_at + 8)
            if flags & P_BRANCH:
                kinds["branch"] += range(base, base + lower)
    return kinds


def point_past_the_file(path, name):
    """Points the first node of named database `name`'s root page 65520
    bytes on, in place; asserts that this lies past the end of the file,
    where reading is SIGBUS (liblmdb follows node offsets unchecked)."""
    data = bytearray(path.read_bytes())
    dbs, _ = named_dbs(data)
    root, = struct.unpack_from("<Q", data, dbs[name] + DB_ROOT)
    assert root * PAGE + 0xFFF0 > len(data), "the root page is too early"
    struct.pack_into("<H", data, root * PAGE + HEADER, 0xFFF0)
    path.write_bytes(bytes(data))
