"""A process-wide glibc allocator setting that saves the page faults of large, short-lived tensors.

Used by inference (``medsr upscale``) and training (``medsr train``): on this project's 2-core CPU it makes a
Swift-SRGAN training step about 1.25x faster and a 256->1024 upscale about 2x faster.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4


def tune_allocator() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the OS after every layer.

    Each layer of a super-resolution network allocates activations of tens to hundreds of MB; by default glibc
    serves them with fresh ``mmap`` calls and unmaps them on free, so every forward pass page-faults through
    gigabytes of newly zeroed memory. Serving them from the heap and never trimming it makes repeated forwards
    reuse the same pages (measured in ``bench/upscale_speed.py``). This changes the whole process's allocator,
    so only the command-line tool (``upscale``, ``evaluate``, ``train``) and benchmarks call it;
    ``MEDSR_TUNE_ALLOCATOR=0`` disables it. Returns whether it was applied (glibc only).
    """
    if os.environ.get("MEDSR_TUNE_ALLOCATOR", "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(_M_MMAP_MAX, 0) == 1
    ok &= mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    ok &= mallopt(_M_TOP_PAD, 256 * 2**20) == 1
    return bool(ok)
