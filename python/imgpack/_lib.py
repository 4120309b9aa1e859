"""Loading libimgpack and declaring the C functions the binding calls.

The library is the first of:

1. the file named by the environment variable ``IMGPACK_LIBRARY``, if set
   (then nothing else is tried: it is also how to load a sanitizer build,
   with the sanitizer's runtime preloaded into the interpreter);
2. in a source checkout (this package at ``<checkout>/python/imgpack``),
   the checkout's ``build/libimgpack.so``: exactly ``build/``, never
   another build tree, and not when it is a sanitizer build, since
   loading one into an interpreter that did not start with its runtime
   aborts the interpreter;
3. ``libimgpack.so.<major>`` through the system's loader: an installed
   library (the .deb's, one in /usr/local/lib once ``ldconfig`` has run,
   or one in a directory of ``LD_LIBRARY_PATH``).

It must be the version this package was made for (``VERSION``, beside
this file: the project's one version, which the C build reads too).
ImportError says what to do when there is no library or the wrong one.
Signatures follow include/imgpack/imgpack.h, reader.h, catalog.h and
verify.h one to one.
"""

import ctypes
import os
import pathlib
import struct

VERSION = pathlib.Path(__file__).with_name("VERSION").read_text().strip()
# The shared library's SONAME, as CMakeLists.txt sets it (SOVERSION).
_SONAME = "libimgpack.so." + VERSION.split(".")[0]
_PACKAGE = pathlib.Path(__file__).resolve().parent
_HOW_TO_GET_ONE = (
    "install it (the .deb, or 'cmake --install build' and then 'ldconfig'), "
    "put its directory in LD_LIBRARY_PATH, or set IMGPACK_LIBRARY to the "
    "file; in a source checkout, build it into build/ ('cmake -S . -B "
    "build && cmake --build build')")


def _checkout_library():
    """build/libimgpack.so of the source checkout this package lies in,
    or None when it is not in one or nothing is built there."""
    root = _PACKAGE.parent.parent
    if (_PACKAGE.parent.name != "python"
            or not (root / "include" / "imgpack" / "imgpack.h").is_file()):
        return None
    path = root / "build" / "libimgpack.so"
    return path if path.is_file() else None


def _dynstr(data):
    """The .dynstr section of an ELF file's bytes (the names of the
    symbols and libraries it links dynamically), or b"" if none."""
    if data[:4] != b"\x7fELF":
        return b""
    order = "<" if data[5] == 1 else ">"
    if data[4] == 2:  # ELFCLASS64
        (shoff,) = struct.unpack_from(order + "Q", data, 0x28)
        entsize, count, names = struct.unpack_from(order + "HHH", data, 0x3A)
        where, fields = 0x18, order + "QQ"
    else:
        (shoff,) = struct.unpack_from(order + "I", data, 0x20)
        entsize, count, names = struct.unpack_from(order + "HHH", data, 0x2E)
        where, fields = 0x10, order + "II"

    def section(index):
        base = shoff + index * entsize
        (name,) = struct.unpack_from(order + "I", data, base)
        return (name,) + struct.unpack_from(fields, data, base + where)

    _, names_at, _ = section(names)
    for index in range(count):
        name, offset, size = section(index)
        start = names_at + name
        if data[start:data.index(b"\0", start)] == b".dynstr":
            return data[offset:offset + size]
    return b""


def _sanitizer(path):
    """The sanitizer `path` was built with ("asan", "tsan", ...), read from
    the runtime it links (gcc) or the runtime symbols it imports (clang),
    or None for an ordinary build."""
    names = _dynstr(pathlib.Path(path).read_bytes())
    for sanitizer in (b"asan", b"hwasan", b"tsan", b"msan", b"ubsan"):
        if b"lib%s.so" % sanitizer in names or b"__%s_" % sanitizer in names:
            return sanitizer.decode()
    return None


def _open(path, how):
    """The library at `path` (found by `how`), checked for its version."""
    try:
        found = ctypes.CDLL(path)
    except OSError as exc:
        raise ImportError("imgpack: cannot load libimgpack %s (%s): %s; %s"
                          % (how, path, exc, _HOW_TO_GET_ONE)) from None
    found.imgpack_version.restype = ctypes.c_char_p
    version = found.imgpack_version().decode()
    if version != VERSION:
        raise ImportError(
            "imgpack: the library %s (%s) is version %s, but this imgpack "
            "package is %s; use the library and the package of the same "
            "sources: rebuild the one or reinstall the other"
            % (how, path, version, VERSION))
    return found


def _load():
    override = os.environ.get("IMGPACK_LIBRARY")
    if override:
        return _open(override, "named by IMGPACK_LIBRARY")
    skipped = ""
    checkout = _checkout_library()
    if checkout is not None:
        sanitizer = _sanitizer(checkout)
        if sanitizer is None:
            return _open(str(checkout), "of this checkout")
        skipped = ("; %s was built with %s, which only loads with its runtime "
                   "preloaded: set IMGPACK_LIBRARY to it and LD_PRELOAD to "
                   "the runtime to use it" % (checkout, sanitizer))
    try:
        return _open(_SONAME, "from the system's loader")
    except ImportError as exc:
        raise ImportError(str(exc) + skipped) from None


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


class Augment(ctypes.Structure):
    """imgpack_augment."""
    _fields_ = [
        ("top", ctypes.c_uint32),
        ("left", ctypes.c_uint32),
        ("height", ctypes.c_uint32),
        ("width", ctypes.c_uint32),
        ("flip", ctypes.c_int32),
    ]


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
_declare("imgpack_reader_prefetch", _S, c_reader_p, u64_p, ctypes.c_uint64)
_declare("imgpack_reader_set_prefetch_limit", _S, c_reader_p,
         ctypes.c_uint64)
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
_declare("imgpack_batch_options_set_random_resized", _S, c_opts_p,
         ctypes.c_double, ctypes.c_double, ctypes.c_double, ctypes.c_double)
_declare("imgpack_batch_options_set_flip", _S, c_opts_p, ctypes.c_int32)
_declare("imgpack_batch_options_set_threads", _S, c_opts_p, ctypes.c_uint32)
_declare("imgpack_batch_options_set_prefetch", _S, c_opts_p, ctypes.c_uint32)
_declare("imgpack_batcher_create", _S, ctypes.POINTER(c_batcher_p),
         c_reader_p, c_opts_p)
_declare("imgpack_batcher_destroy", None, c_batcher_p)
_declare("imgpack_batcher_errmsg", ctypes.c_char_p, c_batcher_p)
for _getter in ("width", "height", "channels"):
    _declare("imgpack_batcher_" + _getter, ctypes.c_uint32, c_batcher_p)
_declare("imgpack_batcher_image_bytes", ctypes.c_uint64, c_batcher_p)
for _fill in ("run", "submit"):
    _declare("imgpack_batcher_" + _fill, _S, c_batcher_p, u64_p,
             ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64,
             ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p)
_declare("imgpack_batcher_wait", _S, c_batcher_p)
_declare("imgpack_batcher_in_flight", ctypes.c_uint32, c_batcher_p)
_declare("imgpack_augment_params", _S, ctypes.c_uint64, ctypes.c_uint64,
         ctypes.c_uint64, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_double,
         ctypes.c_double, ctypes.c_double, ctypes.c_double, ctypes.c_int32,
         ctypes.POINTER(Augment))

_declare("imgpack_sampler_count", ctypes.c_uint64, ctypes.c_uint64,
         ctypes.c_uint32, ctypes.c_int32)
_declare("imgpack_sampler_indices", _S, ctypes.c_uint64, ctypes.c_uint64,
         ctypes.c_uint64, ctypes.c_int32, ctypes.c_uint32, ctypes.c_uint32,
         ctypes.c_int32, u64_p, ctypes.c_uint64)
_declare("imgpack_sampler_indices_windowed", _S, ctypes.c_uint64,
         ctypes.c_uint64, ctypes.c_uint64, ctypes.c_int32, ctypes.c_uint64,
         ctypes.c_uint32, ctypes.c_uint32, ctypes.c_int32, u64_p,
         ctypes.c_uint64)
_declare("imgpack_sampler_weighted", _S, f64_p, ctypes.c_uint64,
         ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint32,
         ctypes.c_uint32, u64_p, ctypes.c_uint64)
_declare("imgpack_sampler_balanced_weights", _S, u32_p, ctypes.c_uint64,
         f64_p)
_declare("imgpack_reader_select", _S, c_reader_p, ctypes.c_char_p,
         ctypes.POINTER(ctypes.c_char_p), ctypes.c_uint32, u64_p,
         ctypes.c_uint64, u64_p)

c_catalog_p = ctypes.c_void_p
_declare("imgpack_catalog_open", _S, ctypes.POINTER(c_catalog_p),
         ctypes.c_char_p, ctypes.c_uint32)
_declare("imgpack_catalog_close", None, c_catalog_p)
_declare("imgpack_catalog_errmsg", ctypes.c_char_p, c_catalog_p)
_declare("imgpack_catalog_stats", _S, c_catalog_p, f64_p, f64_p,
         ctypes.c_uint32, u32_p)


class Problem(ctypes.Structure):
    """imgpack_problem."""
    _fields_ = [
        ("kind", ctypes.c_int32),
        ("record", ctypes.c_uint64),
        ("message", ctypes.c_char_p),
    ]


class VerifyOptions(ctypes.Structure):
    """imgpack_verify_options."""
    _fields_ = [("sources", ctypes.c_char_p)]


class VerifySummary(ctypes.Structure):
    """imgpack_verify_summary."""
    _fields_ = [
        ("records", ctypes.c_uint64),
        ("classes", ctypes.c_uint32),
        ("complete", ctypes.c_int32),
        ("problems", ctypes.c_uint64),
        ("opened", ctypes.c_int32),
        ("signal", ctypes.c_int32),
        ("error", ctypes.c_char * 1024),
    ]


ON_PROBLEM = ctypes.CFUNCTYPE(None, ctypes.c_void_p,
                              ctypes.POINTER(Problem))
_declare("imgpack_verify", _S, ctypes.c_char_p,
         ctypes.POINTER(VerifyOptions), ON_PROBLEM, ctypes.c_void_p,
         ctypes.POINTER(VerifySummary))

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
DTYPE_FLOAT16 = 2
DTYPE_BFLOAT16 = 3
CROP_CENTER = 0
CROP_RANDOM = 1
CROP_RANDOM_RESIZED = 2
MAX_PREFETCH = 16
FORMAT_RAW = 0
ERR_NOT_FOUND = 4
PROBLEM_NO_RECORD = (1 << 64) - 1


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
