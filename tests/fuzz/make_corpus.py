"""Writes the seed corpora of the fuzz targets (run with /usr/bin/python3).

tests/fuzz/corpus/decode: small JPEG, PNG and WebP files covering the
decoder's branches: baseline, progressive, 4:2:0 and 4:4:4, gray, CMYK,
restart markers, PNG gray/RGB/RGBA/palette/16-bit/interlaced, WebP lossy,
lossless and with alpha, and a few broken ones (truncated, bad CRC,
huge dimensions in the header).

tests/fuzz/corpus/record: LMDB record values as the writer lays them out
(docs/FORMAT.md): raw, jpeg and webp payloads, and damaged variants.

The output is deterministic; the committed files are what this writes.
"""
import pathlib
import struct
import sys
import zlib

import numpy as np
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "python"))
from forge import encoded, png_bomb_header  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent


def photo(width, height, mode="RGB", seed=0):
    """A smooth image with some noise: compresses like a photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(width - 1, 1),
                     y * 255 // max(height - 1, 1),
                     (x + y) * 127 // max(width + height - 2, 1)], axis=2)
    noisy = np.clip(base + rng.integers(-12, 13, base.shape), 0, 255)
    return Image.fromarray(noisy.astype(np.uint8), "RGB").convert(mode)


def jpeg_with_size(data, width, height):
    """The JPEG with its SOF dimensions replaced."""
    out = bytearray(data)
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = out.find(marker)
        if at >= 0:
            out[at + 5:at + 9] = struct.pack(">HH", height, width)
            return bytes(out)
    raise ValueError("no SOF")


def decode_seeds():
    rgb = photo(48, 40)
    wide = photo(300, 20, seed=1)
    rgba = rgb.convert("RGBA")
    rgba.putalpha(rgb.convert("L"))
    seeds = {
        "baseline_420.jpg": encoded(rgb, "JPEG", quality=75),
        "baseline_444.jpg": encoded(rgb, "JPEG", quality=90, subsampling=0),
        "progressive.jpg": encoded(rgb, "JPEG", quality=80, progressive=True),
        "gray.jpg": encoded(rgb.convert("L"), "JPEG"),
        "cmyk.jpg": encoded(rgb.convert("CMYK"), "JPEG"),
        "wide_422.jpg": encoded(wide, "JPEG", subsampling=1),
        "rgb.png": encoded(rgb, "PNG"),
        "gray.png": encoded(rgb.convert("L"), "PNG"),
        "gray16.png": encoded(Image.fromarray(
            (np.asarray(rgb.convert("L")).astype(np.uint16) * 257)), "PNG"),
        "rgba.png": encoded(rgba, "PNG"),
        "palette.png": encoded(rgb.convert("P", palette=Image.ADAPTIVE,
                                           colors=16), "PNG"),
        "bilevel.png": encoded(rgb.convert("1"), "PNG"),
        "lossy.webp": encoded(rgb, "WEBP", quality=70),
        "lossless.webp": encoded(rgb, "WEBP", lossless=True),
        "alpha.webp": encoded(rgba, "WEBP", quality=70),
        "tiny.png": encoded(photo(3, 2), "PNG"),
    }
    jpeg = seeds["baseline_420.jpg"]
    seeds["truncated.jpg"] = jpeg[:len(jpeg) // 2]
    seeds["truncated.png"] = seeds["rgb.png"][:len(seeds["rgb.png"]) // 2]
    seeds["truncated.webp"] = seeds["lossy.webp"][:len(seeds["lossy.webp"]) // 2]
    bad_crc = bytearray(seeds["tiny.png"])
    bad_crc[29] ^= 0xFF  # the IHDR CRC
    seeds["bad_crc.png"] = bytes(bad_crc)
    seeds["bomb.png"] = png_bomb_header(60000, 60000)
    seeds["bomb.jpg"] = jpeg_with_size(jpeg, 60000, 60000)
    return seeds


def record(fmt, channels, width, height, label, payload, version=1):
    head = struct.pack("<4sHBBIIIII", b"IPKR", version, fmt, channels, width,
                       height, label, len(payload), zlib.crc32(payload))
    return head + struct.pack("<I", zlib.crc32(head)) + payload


def record_seeds():
    small = photo(12, 10)
    raw = np.asarray(small).tobytes()
    good_raw = record(0, 3, 12, 10, 1, raw)
    seeds = {
        "raw.rec": good_raw,
        "raw_gray.rec": record(0, 1, 12, 10, 0, bytes(120)),
        "jpeg.rec": record(1, 3, 12, 10, 2, encoded(small, "JPEG")),
        "webp.rec": record(2, 3, 12, 10, 0, encoded(small, "WEBP")),
        "webp_lossless.rec": record(3, 3, 12, 10, 0,
                                    encoded(small, "WEBP", lossless=True)),
        "jpeg_wrong_size.rec": record(1, 3, 5, 5, 0, encoded(small, "JPEG")),
        "version2.rec": record(0, 3, 12, 10, 1, raw, version=2),
        "header_only.rec": good_raw[:32],
        "short.rec": good_raw[:20],
    }
    flipped = bytearray(good_raw)
    flipped[100] ^= 0xFF
    seeds["bad_payload_crc.rec"] = bytes(flipped)
    flipped = bytearray(good_raw)
    flipped[9] ^= 0xFF
    seeds["bad_header_crc.rec"] = bytes(flipped)
    return seeds


def main():
    for name, seeds in (("decode", decode_seeds()),
                        ("record", record_seeds())):
        folder = HERE / "corpus" / name
        folder.mkdir(parents=True, exist_ok=True)
        for file, data in seeds.items():
            (folder / file).write_bytes(data)
        print(f"{folder}: {len(seeds)} files, "
              f"{sum(map(len, seeds.values()))} bytes")


if __name__ == "__main__":
    main()
