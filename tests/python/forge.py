"""Image bytes made in memory for tests and seed corpora: encoded Pillow
images and hand-built PNG chunks (for headers no encoder would write)."""
import io
import struct
import zlib


def encoded(image, fmt, **options):
    """`image` saved as `fmt` with Pillow's `options`, as bytes."""
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def png_chunk(kind, body):
    return (struct.pack(">I", len(body)) + kind + body +
            struct.pack(">I", zlib.crc32(kind + body)))


def png_bomb_header(width, height):
    """A PNG of ~100 bytes claiming width x height RGB pixels: a
    decompression bomb's header, with one tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
            png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) +
            png_chunk(b"IEND", b""))
