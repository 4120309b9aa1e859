"""The memory a Loader's batches are filled into, and how a batch is handed
out: a numpy array or a torch tensor over that memory, never a copy.

A float32 batch of 256 224x224 images is 154 MB. Fresh memory costs a
page fault per page on first touch, and the C threads filling a batch
would take those faults one by one (issue 12 measured a first epoch at
a tenth of the speed of later ones that way). So a Loader allocates its
buffers once, touches every page as it allocates them (numpy asks for
transparent huge pages on arrays this large, so where the kernel allows
it that is one fault per 2 MiB), and refills a buffer only once nothing
refers to the batch it last held: a batch stays valid as long as the
caller keeps it, any view of it, or any tensor made from it. The ring
has ``prefetch + 2`` buffers: the batches in flight, the one being
handed out and the one the caller's loop variable still holds; a caller
that keeps more gets new buffers (the ring forgets the old ones, which
live on as long as the caller holds them).

Pinned memory (torch, CUDA present) comes from torch's caching host
allocator instead, one tensor per batch: it already reuses pinned blocks
without pinning them again, and it knows when an asynchronous copy to
the GPU (``.to("cuda", non_blocking=True)``) has finished reading a block,
which a ring of our own could not tell. The Loader asks it for
``prefetch + 2`` batches up front and hands them back, so the cache holds
them before the first epoch.
"""

import sys
import warnings

import numpy as np

from . import _lib

# Element type of each dtype name: the numpy type the memory is viewed as
# (bfloat16 has none; torch takes its bits from int16, as it takes no
# uint16), and the C constant.
DTYPES = {
    "uint8": (np.uint8, _lib.DTYPE_UINT8),
    "float32": (np.float32, _lib.DTYPE_FLOAT32),
    "float16": (np.float16, _lib.DTYPE_FLOAT16),
    "bfloat16": (np.int16, _lib.DTYPE_BFLOAT16),
}

# Touching one byte per page faults the whole page in.
_PAGE = 4096

# References to a ring buffer nobody else holds: the ring's list, the
# loop variable of _take and getrefcount's own argument.
_UNREFERENCED = 3


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise ImportError("imgpack: output='torch' and pin_memory need "
                          "torch installed") from exc
    return torch


def pinned_available(pin_memory):
    """Whether pinned memory can be had; warns once per call site when it
    was asked for and CUDA is not there (as torch's DataLoader does)."""
    if not pin_memory:
        return False
    if _torch().cuda.is_available():
        return True
    warnings.warn("imgpack.Loader: pin_memory=True but CUDA is not "
                  "available; batches are in ordinary memory",
                  RuntimeWarning, stacklevel=3)
    return False


class Output:
    """Batch memory for one Loader: ``shape`` of one image, ``dtype`` a
    DTYPES name, ``output`` 'numpy' or 'torch', ``pinned`` (torch, CUDA
    present), ``batch_size`` images per buffer, ``slots`` ring buffers."""

    def __init__(self, shape, dtype, output, pinned, batch_size, slots):
        if output not in ("numpy", "torch"):
            raise ValueError("output must be 'numpy' or 'torch'")
        if dtype not in DTYPES:
            raise ValueError("dtype must be one of %s" % ", ".join(DTYPES))
        if dtype == "bfloat16" and output != "torch":
            raise ValueError("numpy has no bfloat16: use output='torch' "
                             "for bfloat16 batches, or dtype='float16'")
        self.shape = tuple(shape)
        self.dtype = dtype
        self.output = output
        self.pinned = pinned
        self._torch = _torch() if output == "torch" or pinned else None
        self._view = np.dtype(DTYPES[dtype][0])
        self.image_bytes = int(np.prod(self.shape)) * self._view.itemsize
        self.batch_size = batch_size
        self._ring = [] if pinned else [self._allocate(batch_size)
                                        for _ in range(slots)]
        if pinned:
            # Pinning is slow (cudaHostAlloc); do it now for as many
            # batches as the ring would hold, all at once so that they are
            # distinct blocks, and let the cache keep them.
            [self.batch(batch_size) for _ in range(slots)]

    def _allocate(self, n):
        owner = np.empty(max(n, 1) * self.image_bytes, np.uint8)
        owner[::_PAGE] = 0
        return owner

    def _take(self, n):
        """A ring buffer of at least n images nobody refers to, or a new
        one (which replaces the oldest, still referenced, buffer)."""
        if n <= self.batch_size:
            for owner in self._ring:
                if sys.getrefcount(owner) <= _UNREFERENCED:
                    return owner
        owner = self._allocate(max(n, self.batch_size))
        if n <= self.batch_size and self._ring:
            self._ring = self._ring[1:] + [owner]
        return owner

    def batch(self, n):
        """(images, labels, images address, labels address) for a batch of
        n: empty arrays or tensors to be filled by C."""
        shape = (n,) + self.shape
        if self.pinned:
            torch = self._torch
            images = torch.empty(shape, dtype=getattr(torch, self.dtype),
                                 pin_memory=True)
            labels = torch.empty(n, dtype=torch.int64, pin_memory=True)
            if self.output == "numpy":
                images, labels = images.numpy(), labels.numpy()
        else:
            owner = self._take(n)
            # A view of the owner: numpy's views of it, and torch's storage
            # made from it, refer to the owner, which is what _take counts.
            images = owner[:n * self.image_bytes].view(self._view)
            images = images.reshape(shape)
            labels = np.empty(n, np.int64)
            if self.output == "torch":
                torch = self._torch
                images = torch.from_numpy(images)
                if self.dtype == "bfloat16":
                    images = images.view(torch.bfloat16)
                labels = torch.from_numpy(labels)
        return images, labels, _address(images), _address(labels)

    def close(self):
        self._ring = []


def _address(x):
    return x.ctypes.data if isinstance(x, np.ndarray) else x.data_ptr()
