"""After `retain_freed_memory`, glibc serves a large tensor from its heap, not from a fresh mapping,
and keeps the memory once the tensor is freed, so the next batch does not fault it in again."""

import ctypes
import ctypes.util

import pytest
import torch

from lsi.allocator import retain_freed_memory

_BYTES = 256 * 2**20  # far above glibc's largest mmap threshold (32 MiB)


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _mallinfo() -> _MallInfo2:
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.mallinfo2.restype = _MallInfo2
    return libc.mallinfo2()


def test_large_tensors_come_from_the_heap_and_stay_there_when_freed() -> None:
    if not retain_freed_memory():
        pytest.skip("no glibc, or LSI_RETAIN_FREED_MEMORY=0")
    block = torch.ones(_BYTES, dtype=torch.uint8)
    assert _mallinfo().hblkhd < _BYTES  # not a separate mapping that free() would unmap
    del block
    assert _mallinfo().fordblks >= _BYTES  # freed into the heap and not trimmed away


def test_setting_the_variable_to_0_leaves_glibc_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LSI_RETAIN_FREED_MEMORY", "0")
    retain_freed_memory.cache_clear()
    try:
        assert retain_freed_memory() is False
    finally:
        retain_freed_memory.cache_clear()
