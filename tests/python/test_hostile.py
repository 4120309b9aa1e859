"""Hostile and odd input: every file is rejected with a reason or packed
exactly as torchvision would have it; the pack never crashes or hangs.

One source tree holds the lot: empty, random, truncated and corrupt files,
decompression bombs (huge dimensions in a few bytes, and a real one), a PNG
with a bad CRC, a symlink loop, a dangling link, a FIFO, an unreadable file,
names with spaces, quotes, SQL and bytes that are not UTF-8 (for files and
classes), and odd images that must pack: CMYK JPEG, 16-bit, palette and
alpha PNGs, WebP with alpha, 1x1 images, 3000x20 strips, 6000x4000 photos.
The decoder's own reject cases are in test_decode_exact.py; here they go
through the whole pack: workers, catalog, stderr, exit status.

Tests run as root, which ignores file modes, so the pack runs as `nobody`
to make the unreadable file unreadable.
"""
import os
import resource
import shutil
import stat
import struct
import subprocess
import tempfile
import zlib

import numpy as np
import pytest
from PIL import Image

from forge import encoded, png_bomb_header, png_chunk
from conftest import IMGPACK, catalog, reference
from storefile import Store

NOBODY = 65534

# A pack that held a bomb's pixels would need gigabytes; the largest real
# image here (6000x4000) needs well under this, even under ASan.
MAX_RSS_KB = 2 << 20


def photo(width, height, seed=0):
    """Smooth gradients plus noise: compresses and resizes like a photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(width - 1, 1),
                     y * 255 // max(height - 1, 1),
                     ((x // 7 + y // 5) % 2) * 255], axis=2)
    noisy = np.clip(base + rng.integers(-20, 21, base.shape), 0, 255)
    return Image.fromarray(noisy.astype(np.uint8), "RGB")


def png_bomb(side):
    """A valid gray PNG of side x side zero pixels: a few hundred KB that
    would take side*side bytes to decode."""
    packer = zlib.compressobj(9)
    row = b"\0" * (side + 1)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
            png_chunk(b"IDAT", body) + png_chunk(b"IEND", b""))


def jpeg_claiming(data, width, height):
    """The JPEG with its frame header's size replaced."""
    out = bytearray(data)
    at = out.find(b"\xff\xc0")
    out[at + 5:at + 9] = struct.pack(">HH", height, width)
    return bytes(out)


def bad_idat_crc(data):
    out = bytearray(data)
    at = out.find(b"IDAT")
    length = struct.unpack(">I", out[at - 4:at])[0]
    out[at + 4 + length] ^= 0xFF
    return bytes(out)


def corrupt_middle(data, seed):
    """Random bytes over the middle fifth: entropy-coded data for a JPEG."""
    out = bytearray(data)
    start, end = len(out) * 2 // 5, len(out) * 3 // 5
    out[start:end] = np.random.default_rng(seed).bytes(end - start)
    return bytes(out)


# Class directory names, as bytes: the packer must keep them exactly.
CLASS_PLAIN = b"a plain"
CLASS_QUOTES = b"b 'quoted' \"class\""
CLASS_SQL = b"c'); DROP TABLE images; --"
CLASS_LATIN1 = b"d caf\xe9"  # Latin-1, not UTF-8


def good_files():
    """(class, name, bytes) of files that must pack exactly."""
    rgb = photo(300, 200)
    rgba = rgb.convert("RGBA")
    rgba.putalpha(rgb.convert("L"))
    gray16 = Image.fromarray(
        (np.asarray(rgb.convert("L")).astype(np.uint16) * 257 + 3))
    return [
        (CLASS_PLAIN, b"cmyk.jpg", encoded(rgb.convert("CMYK"), "JPEG")),
        (CLASS_PLAIN, b"gray16.png", encoded(gray16, "PNG")),
        (CLASS_PLAIN, b"palette.png",
         encoded(rgb.convert("P", palette=Image.ADAPTIVE, colors=64), "PNG")),
        (CLASS_PLAIN, b"palette_trns.png",
         encoded(rgb.convert("P", palette=Image.ADAPTIVE, colors=64), "PNG",
                 transparency=3)),
        (CLASS_PLAIN, b"rgba.png", encoded(rgba, "PNG")),
        (CLASS_PLAIN, b"gray_alpha.png", encoded(rgba.convert("LA"), "PNG")),
        (CLASS_PLAIN, b"alpha.webp", encoded(rgba, "WEBP", quality=85)),
        (CLASS_PLAIN, b"alpha_lossless.webp",
         encoded(rgba, "WEBP", lossless=True)),
        (CLASS_PLAIN, b"one_pixel.png", encoded(photo(1, 1), "PNG")),
        (CLASS_PLAIN, b"one_pixel.jpg", encoded(photo(1, 1), "JPEG")),
        (CLASS_PLAIN, b"strip_3000x20.jpg", encoded(photo(3000, 20, 1), "JPEG")),
        (CLASS_PLAIN, b"strip_20x3000.png", encoded(photo(20, 3000, 2), "PNG")),
        (CLASS_PLAIN, b"small_100x80.jpg", encoded(photo(100, 80, 3), "JPEG")),
        (CLASS_PLAIN, b"large_6000x4000.jpg",
         encoded(photo(6000, 4000, 4), "JPEG", quality=80)),
        (CLASS_QUOTES, b"it's a \"photo\".jpg", encoded(rgb, "JPEG")),
        (CLASS_QUOTES, b"  spaces  .png", encoded(rgb, "PNG")),
        (CLASS_SQL, b"x'; DELETE FROM classes; --.webp",
         encoded(rgb, "WEBP", quality=80)),
        (CLASS_SQL, b"%s %d \\n.jpg", encoded(rgb.convert("L"), "JPEG")),
        (CLASS_LATIN1, b"\xff\xfe not utf-8 \xe9.jpg", encoded(rgb, "JPEG")),
        (CLASS_LATIN1, "snowman \u2603.png".encode(), encoded(rgb, "PNG")),
    ]


def bad_files():
    """(class, name, bytes) of files that must be rejected."""
    rgb = photo(300, 200, 5)
    jpeg, png = encoded(rgb, "JPEG"), encoded(rgb, "PNG")
    webp = encoded(rgb, "WEBP", quality=80)
    rng = np.random.default_rng(7)
    return [
        (CLASS_PLAIN, b"zero_bytes.jpg", b""),
        (CLASS_PLAIN, b"random.jpg", rng.bytes(3000)),
        (CLASS_PLAIN, b"random.png", b"\x89PNG\r\n\x1a\n" + rng.bytes(3000)),
        (CLASS_PLAIN, b"random.webp",
         b"RIFF" + struct.pack("<I", 3004) + b"WEBPVP8 " + rng.bytes(2996)),
        (CLASS_PLAIN, b"truncated.jpg", jpeg[:len(jpeg) // 2]),
        (CLASS_PLAIN, b"truncated.png", png[:len(png) // 2]),
        (CLASS_PLAIN, b"truncated.webp", webp[:len(webp) // 2]),
        (CLASS_PLAIN, b"bomb_header.png", png_bomb_header(60000, 60000)),
        (CLASS_PLAIN, b"bomb_header.jpg", jpeg_claiming(jpeg, 60000, 60000)),
        (CLASS_PLAIN, b"bomb_14000x14000.png", png_bomb(14000)),
        (CLASS_PLAIN, b"bad_idat_crc.png", bad_idat_crc(png)),
        (CLASS_QUOTES, b"it's \"empty\".png", b""),
        (CLASS_SQL, b"'; DROP TABLE rejects; --.jpg", b"not an image\n"),
        (CLASS_LATIN1, b"\xe9\xe8 truncated.jpg", jpeg[:len(jpeg) // 3]),
    ]


def write(root, klass, name, data):
    folder = os.path.join(root, klass)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


@pytest.fixture(scope="module")
def hostile():
    """The source tree, world-readable so `nobody` can pack it, and the
    relative paths (bytes) of the files that must pack and of those that
    must be rejected."""
    base = tempfile.mkdtemp(prefix="imgpack-hostile-").encode()
    os.chmod(base, 0o777)
    src = os.path.join(base, b"src")
    good, bad = good_files(), bad_files()
    for klass, name, data in good + bad:
        write(src, klass, name, data)
    packs = {os.path.join(k, n) for k, n, _ in good}
    rejects = {os.path.join(k, n) for k, n, _ in bad}

    plain = os.path.join(src, CLASS_PLAIN)
    # Neither rejected nor packed: a loop is skipped, a directory named
    # like an image is walked.
    os.symlink(b".", os.path.join(plain, b"loop"))
    os.makedirs(os.path.join(plain, b"dir.jpg"))
    # Listed as images, and rejected when opened.
    os.symlink(b"nowhere.jpg", os.path.join(plain, b"dangling.jpg"))
    os.mkfifo(os.path.join(plain, b"fifo.jpg"))
    rejects |= {os.path.join(CLASS_PLAIN, n)
                for n in (b"dangling.jpg", b"fifo.jpg")}
    # A corrupt but complete JPEG: libjpeg-turbo may or may not warn,
    # depending on where the damage lands; either way is checked below.
    write(src, CLASS_PLAIN, b"corrupt.jpg",
          corrupt_middle(encoded(photo(300, 200, 6), "JPEG"), 8))

    for folder, dirs, files in os.walk(src):
        os.chmod(folder, 0o755)
        for name in files:
            path = os.path.join(folder, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                os.chmod(path, 0o644)
    unreadable = os.path.join(CLASS_PLAIN, b"unreadable.jpg")
    write(src, CLASS_PLAIN, b"unreadable.jpg", encoded(photo(50, 40), "JPEG"))
    os.chmod(os.path.join(src, unreadable), 0)
    rejects.add(unreadable)
    yield base, src, packs, rejects
    shutil.rmtree(base)


def drop_to_nobody():
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)


def pack_hostile(src, out, *options):
    return subprocess.run(
        [IMGPACK, "pack", "--quiet", "--jobs", "2", *options, src, out],
        capture_output=True, preexec_fn=drop_to_nobody, timeout=300)


def check_store(src, out, done, packs, rejects, resize):
    assert done.returncode == 3, done.stderr.decode(errors="replace")
    db = catalog(out.decode())
    rows = {os.fsencode(path): reason
            for path, reason in db.execute("SELECT path, reason FROM rejects")}
    corrupt = os.path.join(CLASS_PLAIN, b"corrupt.jpg")
    assert set(rows) - {corrupt} == rejects
    assert all(reason.strip() for reason in rows.values())
    lines = done.stderr.splitlines()
    assert len(lines) == len(rows), done.stderr
    for path in rows:
        assert any(line.startswith(b"imgpack: " + os.path.join(src, path) +
                                   b": ") for line in lines), path

    store = Store(out.decode())
    try:
        packed = [(idx, os.fsencode(path)) for idx, path in db.execute(
            "SELECT idx, path FROM images ORDER BY idx")]
        assert {path for _, path in packed} - {corrupt} == packs
        assert len(store) == len(packed)
        for idx, path in packed:
            want = reference(os.path.join(src, path).decode(
                errors="surrogateescape"), resize=resize)
            assert np.array_equal(store.record(idx).pixels(), want), path
    finally:
        store.close()
    names = [os.fsencode(n) for n, in db.execute(
        "SELECT name FROM classes ORDER BY class_id")]
    assert names == [CLASS_PLAIN, CLASS_QUOTES, CLASS_SQL, CLASS_LATIN1]


def test_hostile_tree_packs_exactly_or_rejects_with_reasons(hostile):
    base, src, packs, rejects = hostile
    out = os.path.join(base, b"out")
    done = pack_hostile(src, out)
    check_store(src, out, done, packs, rejects, resize=256)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert peak < MAX_RSS_KB, f"pack peaked at {peak} KB"
    # verify finds every odd name's source unchanged.
    done = subprocess.run([IMGPACK, "verify", "--sources", src, out],
                          capture_output=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_without_resize_small_images_are_padded_like_center_crop(hostile):
    base, src, packs, rejects = hostile
    out = os.path.join(base, b"out_noresize")
    done = pack_hostile(src, out, "--resize", "0")
    check_store(src, out, done, packs, rejects, resize=0)


def scan_data(data, scan):
    """(begin, end) of the entropy-coded data of the JPEG's `scan`-th scan:
    after its SOS segment, up to the next marker that is not a restart."""
    sos = [i for i in range(len(data) - 1) if data[i:i + 2] == b"\xff\xda"]
    begin = sos[scan] + 2 + struct.unpack(">H", data[sos[scan] + 2:
                                                     sos[scan] + 4])[0]
    end = begin
    while data[end] != 0xFF or data[end + 1] == 0 or \
            0xD0 <= data[end + 1] <= 0xD7:
        end += 1
    return begin, end


def flip_in_scan(data, scan, fraction, offset):
    """The JPEG with bit 4 of one byte flipped, `fraction` of the way into
    the `scan`-th scan's data plus `offset` bytes: a place where the flip
    makes libjpeg lose its way (most flips do not: Huffman codes fall back
    into step within a few codes)."""
    begin, end = scan_data(data, scan)
    at = begin + int((end - begin) * fraction) + offset
    assert 0xFF not in (data[at - 1], data[at], data[at] ^ 0x10)
    out = bytearray(data)
    out[at] ^= 0x10
    return bytes(out)


def junk_after_app0(data):
    """Bytes that are no marker between the JFIF APP0 segment and the next
    marker: libjpeg warns and skips them, Pillow skips them."""
    assert data[2:4] == b"\xff\xe0"
    end = 4 + struct.unpack(">H", data[4:6])[0]
    return data[:end] + b"junk\n" + data[end:]


def test_damaged_scan_data_is_rejected_junk_outside_it_packs(tmp_path):
    """A JPEG whose entropy-coded data leaves bytes over where a scan ends
    lost its way in that scan: rejected, wherever the damage is, the
    crop's rows or those below (README, "Bad input"). Junk between header
    markers or after EOI packs, exactly as torchvision decodes it."""
    image = photo(300, 400, 6)  # the crop reads source rows 68 to 331
    baseline = encoded(image, "JPEG")
    progressive = encoded(image, "JPEG", progressive=True)
    src, out = tmp_path / "src", tmp_path / "out"
    files = {
        "in_crop.jpg": flip_in_scan(baseline, 0, 0.5, 3),
        "below_crop.jpg": flip_in_scan(baseline, 0, 0.9, 0),
        "progressive.jpg": flip_in_scan(progressive, 1, 0.5, 4),
        "junk_between_markers.jpg": junk_after_app0(baseline),
        "junk_between_markers_progressive.jpg": junk_after_app0(progressive),
        "junk_after_eoi.jpg": baseline + b"trailing junk",
    }
    (src / "a").mkdir(parents=True)
    for name, data in files.items():
        (src / "a" / name).write_bytes(data)
    done = subprocess.run([IMGPACK, "pack", "--quiet", "--jobs", "2",
                           str(src), str(out)], capture_output=True,
                          text=True)
    assert done.returncode == 3, done.stderr
    rejects = dict(catalog(out).execute("SELECT path, reason FROM rejects"))
    extraneous = "corrupt JPEG: Corrupt JPEG data: %d extraneous bytes " \
                 "before marker 0x%s"
    assert sorted(rejects) == ["a/below_crop.jpg", "a/in_crop.jpg",
                               "a/progressive.jpg"], rejects
    for name, marker in (("in_crop", "d9"), ("below_crop", "d9"),
                         ("progressive", "da")):
        reason = rejects[f"a/{name}.jpg"]
        count = int(reason.split()[-6])
        assert reason == extraneous % (count, marker), reason
    # What the reject saves a training set from: Pillow decodes the damage
    # without a word, and the crop's pixels are not the photo's.
    intact = tmp_path / "intact.jpg"
    intact.write_bytes(baseline)
    assert not np.array_equal(reference(str(src / "a" / "in_crop.jpg")),
                              reference(str(intact)))

    store = Store(str(out))
    try:
        packed = catalog(out).execute(
            "SELECT idx, path FROM images ORDER BY idx").fetchall()
        assert [p for _, p in packed] == [
            "a/junk_after_eoi.jpg", "a/junk_between_markers.jpg",
            "a/junk_between_markers_progressive.jpg"]
        for idx, path in packed:
            assert np.array_equal(store.record(idx).pixels(),
                                  reference(str(src / path))), path
    finally:
        store.close()
