"""Byte-for-byte comparison of the C decoder with Pillow.

The reference is Debian 12's Pillow 9.4: Image.open(path).convert('RGB').
The decoder is reached through the decode_dump test tool, which prints a
PGM (gray, replicated here to RGB as the packer does) or PPM. Inputs are all
real JPEGs of the shared ImageNet sample plus files generated here: JPEG,
PNG and WebP variants written by Pillow, PNG layouts Pillow cannot write
(2/4-bit gray, 16-bit colour, interlaced, short palettes) written by a small
writer below, and a YCCK JPEG from the jpeg_ycck tool.
"""

import io
import os
import pathlib
import struct
import subprocess
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

TOOLS = pathlib.Path(os.environ.get("IMGPACK_TEST_TOOLS", "build/tests"))
SAMPLE = pathlib.Path(os.environ.get("IMGPACK_SAMPLE_DIR",
                                     "../shared/data/imagenet-sample"))
DUMP = TOOLS / "decode_dump"
YCCK = TOOLS / "jpeg_ycck"


def ours(path):
    """The C decoder's pixels as HxWx3 uint8, or None and its stderr."""
    run = subprocess.run([str(DUMP), str(path)], capture_output=True,
                         check=False)
    if run.returncode != 0:
        return None, run.stderr.decode()
    head, _, rest = run.stdout.partition(b"\n")
    size, _, rest = rest.partition(b"\n")
    _, _, pixels = rest.partition(b"\n")
    width, height = (int(v) for v in size.split())
    channels = 1 if head == b"P5" else 3
    arr = np.frombuffer(pixels, np.uint8).reshape(height, width, channels)
    if channels == 1:
        arr = np.repeat(arr, 3, axis=2)
    return arr, ""


def pillow(path):
    with warnings.catch_warnings():
        # Pillow suggests RGBA for palettes with tRNS; we want its RGB.
        warnings.simplefilter("ignore", UserWarning)
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))


def compare(path):
    """None if exact, else a description with the size of the difference."""
    mine, err = ours(path)
    want = pillow(path)
    if mine is None:
        return f"{path.name}: rejected: {err.strip()}"
    if mine.shape != want.shape:
        return f"{path.name}: shape {mine.shape} != {want.shape}"
    diff = np.abs(mine.astype(int) - want.astype(int))
    if diff.any():
        pixels = int(diff.any(axis=2).sum())
        return (f"{path.name}: {pixels} pixels differ, "
                f"max abs diff {int(diff.max())}")
    return None


def test_imagenet_sample_is_exact():
    files = sorted(p for p in SAMPLE.rglob("*") if p.is_file())
    assert len(files) == 300
    failures = [f for f in map(compare, files) if f is not None]
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------- inputs

def photo(size=None):
    """A real photo from the sample, optionally cropped to `size`."""
    path = sorted(p for p in SAMPLE.rglob("*") if p.is_file())[7]
    with Image.open(path) as im:
        im = im.convert("RGB")
    if size is not None:
        im = im.crop((0, 0) + size)
    return im


def cmyk_photo():
    """CMYK with real variation in all four channels, K included."""
    rgb = np.asarray(photo())
    k = np.asarray(photo().convert("L"))[::-1, ::-1]
    cmyk = np.dstack([255 - rgb, k // 2 + (np.arange(k.shape[1]) % 128)])
    return Image.fromarray(cmyk.astype(np.uint8), "CMYK")


def without_adobe_marker(data):
    """The JPEG with its APP14 'Adobe' segment cut out."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if marker == 0xEE and data[pos + 4:pos + 9] == b"Adobe":
            return data[:pos] + data[pos + 2 + length:]
        if marker == 0xDA:
            break
        pos += 2 + length
    raise AssertionError("no Adobe marker")


def png_chunk(kind, body):
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
         (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def pack_row(row, depth):
    """One scanline of samples at `depth` bits, big-endian, padded."""
    flat = row.reshape(-1).astype(np.uint32)
    if depth == 16:
        return flat.astype(">u2").tobytes()
    if depth == 8:
        return flat.astype(np.uint8).tobytes()
    per = 8 // depth
    flat = np.concatenate([flat, np.zeros((-len(flat)) % per, np.uint32)])
    shifts = np.arange(per - 1, -1, -1, dtype=np.uint32) * depth
    return (flat.reshape(-1, per) << shifts).sum(axis=1).astype(
        np.uint8).tobytes()


def write_png(path, arr, color_type, depth, palette=None, trns=None,
              interlace=False):
    """A PNG of `arr` (HxWxS samples) with filter 0 rows, as Pillow can't."""
    height, width = arr.shape[:2]
    raw = bytearray()
    for x0, y0, dx, dy in ADAM7 if interlace else [(0, 0, 1, 1)]:
        sub = arr[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        for row in sub:
            raw += b"\0" + pack_row(row, depth)
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(
        ">IIBBBBB", width, height, depth, color_type, 0, 0, int(interlace)))
    if palette is not None:
        out += png_chunk(b"PLTE", bytes(np.asarray(palette, np.uint8)))
    if trns is not None:
        out += png_chunk(b"tRNS", trns)
    out += png_chunk(b"IDAT", zlib.compress(bytes(raw)))
    out += png_chunk(b"IEND", b"")
    path.write_bytes(out)


def make_inputs(d):
    """Writes every generated case into `d`; returns their paths."""
    rgb = photo((173, 131))
    arr = np.asarray(rgb)
    gray = np.asarray(rgb.convert("L"))
    alpha = ((np.arange(arr.shape[1])[None, :] * 3 +
              np.arange(arr.shape[0])[:, None]) % 256).astype(np.uint8)
    alpha[:20, :20] = 0
    rgba = Image.fromarray(np.dstack([arr, alpha]), "RGBA")
    out = []

    def save(name, im, **kw):
        path = d / name
        im.save(path, **kw)
        out.append(path)

    # JPEG
    save("gray.jpg", rgb.convert("L"), quality=90)
    save("gray_progressive.jpg", rgb.convert("L"), progressive=True)
    save("rgb_420.jpg", rgb, quality=85)
    save("rgb_422.jpg", rgb, quality=85, subsampling=1)
    save("rgb_444.jpg", rgb, quality=85, subsampling=0)
    save("rgb_q100.jpg", rgb, quality=100)
    save("progressive.jpg", photo(), progressive=True, quality=80)
    save("tiny.jpg", photo((1, 1)))
    save("odd.jpg", photo((17, 3)))
    save("cmyk.jpg", cmyk_photo(), quality=90)
    save("cmyk_progressive.jpg", cmyk_photo(), progressive=True)
    buf = io.BytesIO()
    cmyk_photo().save(buf, "JPEG", quality=90)
    (d / "cmyk_no_adobe.jpg").write_bytes(without_adobe_marker(
        buf.getvalue()))
    out.append(d / "cmyk_no_adobe.jpg")
    subprocess.run([str(YCCK), str(d / "ycck.jpg"), "131", "77"], check=True)
    out.append(d / "ycck.jpg")

    # PNG written by Pillow
    save("mode1.png", rgb.convert("1"))
    save("gray8.png", rgb.convert("L"))
    save("la.png", Image.merge("LA", [rgb.convert("L"),
                                      Image.fromarray(alpha)]))
    save("rgb.png", rgb)
    save("rgba.png", rgba)
    pal = rgb.quantize(colors=200)
    save("palette.png", pal)
    save("palette_trns.png", pal, transparency=3)
    save("palette_4bit.png", rgb.quantize(colors=16), bits=4)
    wide = (arr[..., 0].astype(np.uint16) * 257 -
            np.arange(arr.shape[1], dtype=np.uint16)[None, :] * 50)
    save("gray16_pillow.png", Image.fromarray(wide.astype(np.uint16)))
    save("gray_trns.png", rgb.convert("L"), transparency=128)

    # PNG layouts Pillow cannot write
    arr16 = arr.astype(np.uint16) * 257 + (np.arange(arr.shape[1]) % 256)[
        None, :, None].astype(np.uint16)
    a16 = alpha.astype(np.uint16)[..., None] * 257
    g16 = np.concatenate([np.arange(0, 600, dtype=np.uint16),
                          np.arange(60000, 65536, 40, dtype=np.uint16)])
    g16 = np.resize(g16, gray.shape)[..., None]
    cases = [
        ("gray2.png", gray[..., None] >> 6, 0, 2, {}),
        ("gray4.png", gray[..., None] >> 4, 0, 4, {}),
        ("gray1_manual.png", gray[..., None] >> 7, 0, 1, {}),
        ("gray16.png", g16, 0, 16, {}),
        ("gray16_trns.png", g16, 0, 16, {"trns": b"\x00\x10"}),
        ("rgb16.png", arr16, 2, 16, {}),
        ("rgba16.png", np.concatenate([arr16, a16], axis=2), 6, 16, {}),
        ("la16.png", np.concatenate([arr16[..., :1], a16], axis=2), 4, 16,
         {}),
        ("rgb_trns.png", arr, 2, 8, {"trns": b"\0\x10\0\x20\0\x30"}),
        ("palette_short.png", (gray[..., None] // 37), 3, 8,
         {"palette": [[200, 10, 10], [10, 200, 10], [10, 10, 200]],
          "trns": b"\x00\x80"}),
        ("palette_2bit.png", gray[..., None] >> 6, 3, 2,
         {"palette": [[0, 0, 0], [90, 30, 200], [250, 250, 0], [1, 2, 3]]}),
    ]
    for name, data, color, depth, kw in cases:
        for interlace in (False, True):
            path = d / (name[:-4] + ("_adam7.png" if interlace else ".png"))
            write_png(path, data, color, depth, interlace=interlace, **kw)
            out.append(path)
    for name, data, color in [("rgb_manual", arr, 2),
                              ("rgba_manual", np.asarray(rgba), 6),
                              ("la_manual", np.dstack([gray, alpha]), 4)]:
        path = d / f"{name}_adam7.png"
        write_png(path, data, color, 8, interlace=True)
        out.append(path)

    # WebP
    save("lossy.webp", rgb, quality=80)
    save("lossless.webp", rgb, lossless=True)
    save("lossy_alpha.webp", rgba, quality=80)
    save("lossless_alpha.webp", rgba, lossless=True)
    save("lossy_alpha_exact.webp", rgba, quality=80, exact=True)
    save("gray_source.webp", rgb.convert("L"), quality=80)
    return out


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("decode"))


def test_generated_are_exact(generated):
    failures = [f for f in map(compare, generated) if f is not None]
    assert not failures, "\n".join(failures)


def test_ycck_is_really_ycck(generated):
    path = next(p for p in generated if p.name == "ycck.jpg")
    with Image.open(path) as im:
        assert im.mode == "CMYK"
        assert im.info.get("adobe_transform") == 2


# --------------------------------------------------------------- rejects

def rejects(path):
    mine, err = ours(path)
    return mine is None, err


def pillow_fails(path):
    try:
        pillow(path)
    except (OSError, SyntaxError, ValueError):
        return True
    return False


@pytest.mark.parametrize("name,fraction", [
    ("rgb_420.jpg", 0.5), ("progressive.jpg", 0.5), ("progressive.jpg", 0.9),
    ("rgb.png", 0.5), ("palette_short_adam7.png", 0.7), ("lossy.webp", 0.5),
    ("lossless.webp", 0.5),
])
def test_truncated_files_are_rejected_like_pillow(generated, tmp_path, name,
                                                  fraction):
    src = next(p for p in generated if p.name == name)
    data = src.read_bytes()
    cut = tmp_path / ("cut_" + name)
    cut.write_bytes(data[:int(len(data) * fraction)])
    rejected, err = rejects(cut)
    assert rejected
    assert "ERR_DECODE" in err and "truncated" in err, err
    assert pillow_fails(cut)


def test_jpeg_without_eoi_is_rejected_like_pillow(generated, tmp_path):
    src = next(p for p in generated if p.name == "rgb_420.jpg")
    cut = tmp_path / "no_eoi.jpg"
    cut.write_bytes(src.read_bytes()[:-2])
    rejected, err = rejects(cut)
    assert rejected and "truncated JPEG" in err, err
    assert pillow_fails(cut)


def test_not_images_are_rejected(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    noise = tmp_path / "noise.png"
    noise.write_bytes(np.random.default_rng(1).bytes(5000))
    text = tmp_path / "text.jpg"
    text.write_bytes(b"hello, not an image\n" * 10)
    for path in (empty, noise, text):
        rejected, err = rejects(path)
        assert rejected and "ERR_DECODE" in err, err


def test_bad_crc_before_image_data_is_rejected(tmp_path):
    path = tmp_path / "bad_text_crc.png"
    good = tmp_path / "good.png"
    photo((20, 10)).save(good)
    data = good.read_bytes()
    text = png_chunk(b"tEXt", b"Comment\0hello")
    text = text[:-1] + bytes([text[-1] ^ 0xFF])
    path.write_bytes(data[:33] + text + data[33:])
    rejected, err = rejects(path)
    assert rejected and "CRC" in err, err
    assert pillow_fails(path)


def test_animated_webp_is_unsupported(tmp_path):
    path = tmp_path / "anim.webp"
    frames = [photo((40, 30)), photo((40, 30)).transpose(Image.FLIP_LEFT_RIGHT)]
    frames[0].save(path, save_all=True, append_images=frames[1:],
                   duration=100)
    rejected, err = rejects(path)
    assert rejected and "ERR_UNSUPPORTED" in err and "animated" in err, err
