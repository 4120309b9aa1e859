"""Loading libimgpack and declaring the C functions the binding calls.

The library is found, in this order, at the path in the environment
variable IMGPACK_LIBRARY; in the build tree of this checkout (``build/``,
then any other ``build*/`` directory, newest first); then wherever the
system's loader finds ``libimgpack``. Signatures follow
include/imgpack/imgpack.h and include/imgpack/reader.h one to one.
"""

import ctypes
import ctypes.util
import os
import pathlib

_REPO = pathlib.Path(__file__).resolve().parents[2]
_NAME = "libimgpack.so"


def _candidates():
    env = os.environ.get("IMGPACK_LIBRARY")
    if env:
        yield env
        return
    main = _REPO / "build" / _NAME
    if main.exists():
        yield str(main)
    others = sorted(
        (p for p in _REPO.glob("build*/" + _NAME) if p != main),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for path in others:
        yield str(path)
    found = ctypes.util.find_library("imgpack")
    if found:
        yield found


def _load():
    tried = []
    for path in _candidates():
        try:
            return ctypes.CDLL(path)
        except OSError as exc:
            tried.append("%s (%s)" % (path, exc))
    raise ImportError(
        "imgpack: cannot find libimgpack; build it (cmake -S . -B build && "
        "cmake --build build) or set IMGPACK_LIBRARY. Tried: "
        + ("; ".join(tried) or "nothing found"))


lib = _load()

c_reader_p = ctypes.c_void_p
c_opts_p = ctypes.c_void_p
c_batcher_p = ctypes.c_void_p
u8_p = ctypes.POINTER(ctypes.c_uint8)
u32_p = ctypes.POINTER(ctypes.c_uint32)
u64_p = ctypes.POINTER(ctypes.c_uint64)
i64_p = ctypes.POINTER(ctypes.c_int64)
f32_p = ctypes.POINTER(ctypes.c_float)
f64_p = ctypes.POINTER(ctypes.c_double)


class Record(ctypes.Structure):
    """imgpack_record."""
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("size", ctypes.c_uint64),
        ("format", ctypes.c_int32),
        ("width", ctypes.c_uint32),
        ("height", ctypes.c_uint32),
        ("channels", ctypes.c_uint32),
        ("label", ctypes.c_uint32),
    ]


def _declare(name, restype, *argtypes):
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)


_S = ctypes.c_int  # imgpack_status
_declare("imgpack_strerror", ctypes.c_char_p, ctypes.c_int)
_declare("imgpack_status_name", ctypes.c_char_p, ctypes.c_int)
_declare("imgpack_version", ctypes.c_char_p)
_declare("imgpack_format_name", ctypes.c_char_p, ctypes.c_int)

_declare("imgpack_reader_open", _S, ctypes.POINTER(c_reader_p),
         ctypes.c_char_p, ctypes.c_uint32)
_declare("imgpack_reader_close", None, c_reader_p)
_declare("imgpack_reader_errmsg", ctypes.c_char_p, c_reader_p)
_declare("imgpack_reader_path", ctypes.c_char_p, c_reader_p)
_declare("imgpack_reader_count", ctypes.c_uint64, c_reader_p)
_declare("imgpack_reader_num_shards", ctypes.c_uint32, c_reader_p)
_declare("imgpack_reader_num_classes", ctypes.c_uint32, c_reader_p)
_declare("imgpack_reader_class_name", ctypes.c_char_p, c_reader_p,
         ctypes.c_uint32)
_declare("imgpack_reader_format", ctypes.c_int32, c_reader_p)
for _getter in ("width", "height", "channels", "resize", "crop"):
    _declare("imgpack_reader_" + _getter, ctypes.c_uint32, c_reader_p)
_declare("imgpack_reader_is_complete", ctypes.c_int32, c_reader_p)
_declare("imgpack_reader_is_nolock", ctypes.c_int32, c_reader_p)
_declare("imgpack_reader_meta", _S, c_reader_p, ctypes.c_char_p, u8_p,
         ctypes.c_uint64, u64_p)
_declare("imgpack_reader_label", _S, c_reader_p, ctypes.c_uint64, u32_p)
_declare("imgpack_reader_labels", _S, c_reader_p, u32_p, ctypes.c_uint64)
_declare("imgpack_reader_get", _S, c_reader_p, ctypes.c_uint64,
         ctypes.POINTER(Record))
_declare("imgpack_reader_decode", _S, c_reader_p, ctypes.c_uint64, u8_p,
         ctypes.c_uint64, ctypes.POINTER(Record))
_declare("imgpack_reader_release", None, c_reader_p)
_declare("imgpack_reader_refresh", _S, c_reader_p)
_declare("imgpack_reader_channel_stats", _S, c_reader_p, u64_p,
         ctypes.c_uint64, ctypes.c_uint32, f64_p, f64_p, ctypes.c_uint32)

_declare("imgpack_batch_options_create", _S, ctypes.POINTER(c_opts_p))
_declare("imgpack_batch_options_destroy", None, c_opts_p)
_declare("imgpack_batch_options_set_layout", _S, c_opts_p, ctypes.c_int32)
_declare("imgpack_batch_options_set_dtype", _S, c_opts_p, ctypes.c_int32)
_declare("imgpack_batch_options_set_normalize", _S, c_opts_p, f32_p, f32_p,
         ctypes.c_uint32)
_declare("imgpack_batch_options_set_crop", _S, c_opts_p, ctypes.c_uint32,
         ctypes.c_uint32, ctypes.c_int32)
_declare("imgpack_batch_options_set_flip", _S, c_opts_p, ctypes.c_int32)
_declare("imgpack_batch_options_set_threads", _S, c_opts_p, ctypes.c_uint32)
_declare("imgpack_batcher_create", _S, ctypes.POINTER(c_batcher_p),
         c_reader_p, c_opts_p)
_declare("imgpack_batcher_destroy", None, c_batcher_p)
_declare("imgpack_batcher_errmsg", ctypes.c_char_p, c_batcher_p)
for _getter in ("width", "height", "channels"):
    _declare("imgpack_batcher_" + _getter, ctypes.c_uint32, c_batcher_p)
_declare("imgpack_batcher_image_bytes", ctypes.c_uint64, c_batcher_p)
_declare("imgpack_batcher_run", _S, c_batcher_p, u64_p, ctypes.c_uint64,
         ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64, i64_p)

_declare("imgpack_sampler_count", ctypes.c_uint64, ctypes.c_uint64,
         ctypes.c_uint32, ctypes.c_int32)
_declare("imgpack_sampler_indices", _S, ctypes.c_uint64, ctypes.c_uint64,
         ctypes.c_uint64, ctypes.c_int32, ctypes.c_uint32, ctypes.c_uint32,
         ctypes.c_int32, u64_p, ctypes.c_uint64)

# Constants of include/imgpack/reader.h and imgpack.h, which ctypes cannot
# read from the header.
OK = 0
ERR_RANGE = 15
OPEN_INCOMPLETE = 0x1
OPEN_VERIFY = 0x2
OPEN_NO_VERIFY = 0x4
LAYOUT_NHWC = 0
LAYOUT_NCHW = 1
DTYPE_UINT8 = 0
DTYPE_FLOAT32 = 1
CROP_CENTER = 0
CROP_RANDOM = 1
FORMAT_RAW = 0


class ImgpackError(Exception):
    """A failed imgpack call: ``code`` (the C status), ``name`` (e.g.
    "ERR_CORRUPT") and the message naming the store, record and reason."""

    def __init__(self, code, message):
        self.code = code
        self.name = lib.imgpack_status_name(code).decode()
        super().__init__("%s: %s" % (self.name, message
                                     or lib.imgpack_strerror(code).decode()))


def check(status, errmsg):
    """Raises ImgpackError for a nonzero status; ``errmsg`` gives the
    handle's message (called only on failure)."""
    if status != OK:
        raise ImgpackError(status, errmsg())
