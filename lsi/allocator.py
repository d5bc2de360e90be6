"""Make glibc keep the memory torch frees on the CPU.

Torch has no caching allocator on the CPU, so every activation of a forward pass is a fresh malloc.
glibc serves blocks above its mmap threshold (at most 32 MiB) with a new mapping and trims the heap
when its free top grows, so the next batch faults the same pages in again: scoring Gemma-3 on BoolQ
spent about 40% of its CPU time in the kernel on such page faults. Turning off mmap for large blocks
and the trimming keeps those pages in the process; scores are bit-identical. Set
LSI_RETAIN_FREED_MEMORY=0 to leave glibc's defaults alone (`benchmarks/bench_allocator.py` does, to
compare).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


@functools.cache
def retain_freed_memory() -> bool:
    """Tell glibc to reuse freed memory instead of returning it to the OS; False where there is no
    glibc (macOS, musl), whose allocators are left as they are, or when LSI_RETAIN_FREED_MEMORY=0."""
    if os.environ.get("LSI_RETAIN_FREED_MEMORY", "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**30))
