"""Whether a device computes bfloat16 natively, which is what `--dtype auto` asks.

GPUs since Ampere and CPUs with AMX or AVX512-BF16 multiply bfloat16 in hardware, at about four times
float32's speed on AMX. On an AVX2-only CPU (AMD before Zen 4, Intel client chips, most laptops) torch's
bfloat16 matmuls fall back to a generic kernel: scoring ran about five times slower than in float32.
There `bfloat16_matmuls` computes them as a bfloat16 GEMM does in hardware (float32 products and sums,
the result rounded to bfloat16) with float32 kernels, at about float32's speed; `auto` still picks
float32, which is as fast and exact (`benchmarks/bench_dtype.py`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from lsi.choices import DType

# The products a decoder's forward pass spends its time in: linear layers (GPT-2's Conv1D is addmm), MoE
# experts (grouped_mm), attention written out by hand (matmul, bmm). SDPA and elementwise bfloat16 ops
# are vectorised on AVX2 already.
_MATMULS = frozenset(
    {F.linear, torch.addmm, torch.baddbmm, torch.matmul, torch.mm, torch.bmm, torch.Tensor.__matmul__}
    | {getattr(torch.Tensor, name) for name in ("matmul", "mm", "bmm", "addmm", "baddbmm")}
    | ({torch._grouped_mm} if hasattr(torch, "_grouped_mm") else set())
)
# Set to "native" to keep torch's own bfloat16 kernels on such a CPU (the benchmark's baseline).
MATMULS_ENV = "LSI_BFLOAT16_MATMULS"


@functools.cache
def native_bfloat16(device: str) -> bool:
    """True where bfloat16 matmuls run in hardware. A CUDA device this process cannot see (a Ray driver
    on a login node) counts as a current GPU."""
    kind = torch.device(device).type
    if kind == "cuda":
        return not torch.cuda.is_available() or torch.cuda.is_bf16_supported()
    if kind == "cpu":
        probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
        return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)
    return False


@functools.cache
def cpu_label() -> str:
    """The CPU as a score row names it: a row's seconds mean little without it, since the same bfloat16
    coalition took about six times longer on an AVX2-only CPU than on one with AMX (fifteen with torch's
    own bfloat16 kernels)."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    name = models[0] if models else platform.processor() or "unknown CPU"
    bfloat16 = "native" if native_bfloat16("cpu") else "emulated"
    return f"cpu: {name}, {torch.backends.cpu.get_cpu_capability()}, bfloat16 {bfloat16}"


class _Float32Matmuls(TorchFunctionMode):
    """bfloat16 matmuls computed in float32 and rounded back: what AMX and GPUs do (float32 accumulation,
    a bfloat16 result), in another summation order, so sums differ from theirs as any two orders do."""

    def __torch_function__(
        self, func: Callable, types: tuple, args: tuple = (), kwargs: dict | None = None
    ) -> object:
        kwargs = kwargs or {}
        if func not in _MATMULS or not any(_bfloat16(a) for a in (*args, *kwargs.values())):
            return func(*args, **kwargs)
        args = tuple(a.float() if _bfloat16(a) else a for a in args)
        kwargs = {k: a.float() if _bfloat16(a) else a for k, a in kwargs.items()}
        return func(*args, **kwargs).to(torch.bfloat16)


def _bfloat16(value: object) -> bool:
    return isinstance(value, torch.Tensor) and value.dtype == torch.bfloat16


def float32_kernels(device: torch.device | str) -> bool:
    """Whether bfloat16 matmuls on `device` run in float32 kernels (`bfloat16_matmuls`)."""
    device = torch.device(device)
    return device.type == "cpu" and not native_bfloat16("cpu") and os.environ.get(MATMULS_ENV) != "native"


def bfloat16_matmuls(device: torch.device | str) -> contextlib.AbstractContextManager:
    """Around a forward pass: on a CPU without bfloat16 instructions, its bfloat16 matmuls in float32
    kernels (about five times faster there, `benchmarks/bench_dtype.py`); elsewhere nothing."""
    return _Float32Matmuls() if float32_kernels(device) else contextlib.nullcontext()


def device_label(device: torch.device, dtype: torch.dtype | None = None) -> str:
    """What ran a coalition, as its store row records it: the GPU's name, or the CPU's, and for a
    bfloat16 model whose matmuls ran in float32 kernels, that (its sums differ from torch's kernels')."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type != "cpu":
        return str(device)
    kernels = ", matmuls in float32 kernels" if dtype == torch.bfloat16 and float32_kernels(device) else ""
    return cpu_label() + kernels


def resolve_dtype(dtype: DType, device: str) -> DType:
    """`auto` as a concrete dtype for this device; any other dtype as it is."""
    if dtype is not DType.AUTO:
        return dtype
    return DType.BFLOAT16 if native_bfloat16(device) else DType.FLOAT32


def warn_if_emulated(dtype: DType, device: str) -> None:
    """One warning when bfloat16 will run emulated: the user asked for it, so it is kept, but it buys no
    speed over float32 here."""
    if dtype is DType.BFLOAT16 and torch.device(device).type == "cpu" and not native_bfloat16(device):
        warnings.warn(
            "this CPU has no bfloat16 instructions (AMX or AVX512-BF16): lsi computes bfloat16 matmuls with "
            "float32 kernels here, at about float32's speed; --dtype auto (or float32) picks float32, as "
            "fast and exact",
            stacklevel=3,
        )
