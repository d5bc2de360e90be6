"""`--dtype auto`: bfloat16 only where the device multiplies it in hardware, resolved before a store
is named."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lsi.choices import DType
from lsi.config import RunConfig
from lsi.hardware import native_bfloat16, resolve_dtype, warn_if_emulated


@pytest.fixture
def cpu_bfloat16(monkeypatch: pytest.MonkeyPatch):
    """Pretend the CPU has (True) or lacks (False) AMX; AVX512-BF16 is reported absent."""

    def pretend(native: bool) -> None:
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: native)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
        native_bfloat16.cache_clear()

    yield pretend
    native_bfloat16.cache_clear()


@pytest.mark.parametrize(("native", "expected"), [(True, DType.BFLOAT16), (False, DType.FLOAT32)])
def test_auto_follows_the_cpu(cpu_bfloat16, native: bool, expected: DType) -> None:
    cpu_bfloat16(native)
    assert resolve_dtype(DType.AUTO, "cpu") is expected
    config = RunConfig(dtype="auto", granularity="block", limit=7)
    assert config.dtype is expected
    assert config.store_path() == Path(f"results/scores/smollm2-135m/arc_easy/block-{expected.value}-limit7")
    assert config.parameters()["dtype"] == expected.value


def test_named_dtypes_are_kept(cpu_bfloat16) -> None:
    cpu_bfloat16(False)
    assert resolve_dtype(DType.BFLOAT16, "cpu") is DType.BFLOAT16
    assert RunConfig(dtype="float16").dtype is DType.FLOAT16


def test_an_unseen_cuda_device_counts_as_a_current_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    native_bfloat16.cache_clear()
    assert resolve_dtype(DType.AUTO, "cuda:0") is DType.BFLOAT16
    native_bfloat16.cache_clear()


def test_emulated_bfloat16_warns_once_asked(cpu_bfloat16, recwarn: pytest.WarningsRecorder) -> None:
    cpu_bfloat16(True)
    warn_if_emulated(DType.BFLOAT16, "cpu")
    warn_if_emulated(DType.FLOAT32, "cpu")
    assert not recwarn.list
    cpu_bfloat16(False)
    with pytest.warns(UserWarning, match=r"no bfloat16 instructions.*--dtype auto"):
        warn_if_emulated(DType.BFLOAT16, "cpu")
