"""`--dtype auto`: bfloat16 only where the device multiplies it in hardware, resolved before a store
is named; elsewhere bfloat16 matmuls run in float32 kernels and round as a bfloat16 GEMM does."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tiny_models import N_BLOCKS, tiny_model

from lsi import hardware
from lsi.choices import DType
from lsi.config import RunConfig
from lsi.engine import TokenRequest
from lsi.hardware import (
    MATMULS_ENV,
    bfloat16_matmuls,
    cpu_label,
    native_bfloat16,
    resolve_dtype,
    warn_if_emulated,
)
from lsi.jobs import ScoringJob, Unit, checked_worker


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


def test_float32_kernels_round_each_product_as_a_bfloat16_gemm(cpu_bfloat16, monkeypatch) -> None:
    cpu_bfloat16(False)
    monkeypatch.delenv(MATMULS_ENV, raising=False)
    g = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(*shape, generator=g).to(torch.bfloat16) for shape in ((3, 5, 64), (32, 64), (32,)))
    product = x.double() @ w.double().T
    with bfloat16_matmuls("cpu"):
        biased = [F.linear(x, w, b), torch.addmm(b, x[0], w.T)[None]]
        plain = [x @ w.T, torch.matmul(x, w.T), x.matmul(w.T)]
        batched = torch.bmm(x, x.transpose(1, 2))
        doubled = x + x  # not a product: untouched
        wide = F.linear(x.float(), w.float(), b.float())  # float32 in: float32 out, as without the mode
    for outs, exact in ((biased, product + b.double()), (plain, product)):
        for out in outs:
            assert out.dtype == torch.bfloat16
            # float32 sums rounded once to bfloat16: within half a step (2^-8 relative) of the exact value
            assert torch.allclose(out.double(), exact[: len(out)], rtol=2**-8, atol=1e-5)
    assert batched.dtype == torch.bfloat16
    assert torch.allclose(batched.double(), x.double() @ x.double().transpose(1, 2), rtol=2**-8, atol=1e-5)
    assert torch.equal(doubled, x + x) and wide.dtype == torch.float32
    assert torch.equal(wide, F.linear(x.float(), w.float(), b.float()))


def test_float32_kernels_only_on_a_cpu_without_bfloat16(cpu_bfloat16, monkeypatch) -> None:
    monkeypatch.delenv(MATMULS_ENV, raising=False)
    cpu_bfloat16(False)
    assert isinstance(bfloat16_matmuls("cpu"), hardware._Float32Matmuls)
    monkeypatch.setenv(MATMULS_ENV, "native")  # the benchmark's baseline: torch's own kernels
    assert isinstance(bfloat16_matmuls("cpu"), contextlib.nullcontext)
    monkeypatch.delenv(MATMULS_ENV)
    cpu_bfloat16(True)
    assert isinstance(bfloat16_matmuls("cpu"), contextlib.nullcontext)
    assert isinstance(bfloat16_matmuls("cuda:0"), contextlib.nullcontext)


@pytest.mark.parametrize(
    ("family", "products"),
    [("llama", {F.linear}), ("mixtral", {F.linear, torch._grouped_mm}), ("gpt2", {torch.addmm})],  # Conv1D
)
def test_a_worker_scores_bfloat16_through_float32_kernels(
    cpu_bfloat16, monkeypatch, family, products
) -> None:
    """Every product of the forward pass goes through the mode, and the log-likelihoods stay those of
    torch's own bfloat16 kernels up to summation order."""
    cpu_bfloat16(False)
    seen = []
    through = hardware._Float32Matmuls.__torch_function__

    def record(self, func, types, args=(), kwargs=None):
        seen.append(func)
        return through(self, func, types, args, kwargs)

    monkeypatch.setattr(hardware._Float32Matmuls, "__torch_function__", record)
    players = [f"block.{i}" for i in range(N_BLOCKS)]
    worker = checked_worker(tiny_model(family, torch.bfloat16), "block", players)
    requests = [
        TokenRequest((1, 2, 3, 4), (5, 6)),
        TokenRequest((1, 2, 3, 4), (7,)),
        TokenRequest((9, 8), (7, 6, 5)),
    ]
    job = ScoringJob.from_requests(requests, max_length=16)
    coalitions = ("1" * N_BLOCKS, "0" + "1" * (N_BLOCKS - 1), "1" * (N_BLOCKS - 1) + "0")
    unit = Unit(coalitions, tuple(range(len(worker.batches(job)))))
    monkeypatch.delenv(MATMULS_ENV, raising=False)
    fast = worker.score(job, unit)
    monkeypatch.setenv(MATMULS_ENV, "native")
    native = worker.score(job, unit)
    assert products <= set(seen)
    assert fast.device == f"{cpu_label()}, matmuls in float32 kernels" and native.device == cpu_label()
    assert fast.loglik.shape == native.loglik.shape == (3, 3)
    assert abs(fast.loglik - native.loglik).max() <= 0.02 * abs(native.loglik).max()
