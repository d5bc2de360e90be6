"""Whether a device computes bfloat16 natively, which is what `--dtype auto` asks.

GPUs since Ampere and CPUs with AMX or AVX512-BF16 multiply bfloat16 in hardware, at about four times
float32's speed on AMX. An AVX2-only CPU (AMD before Zen 4, Intel client chips, most laptops) converts
every operand instead: there a bfloat16 forward pass is several times *slower* than float32
(`benchmarks/bench_dtype.py`), so `auto` picks float32 and stays exact.
"""

from __future__ import annotations

import functools
import platform
import warnings
from pathlib import Path

import torch

from lsi.choices import DType


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
    coalition takes about fifteen times longer on an AVX2-only CPU than on one with AMX."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    name = models[0] if models else platform.processor() or "unknown CPU"
    bfloat16 = "native" if native_bfloat16("cpu") else "emulated"
    return f"cpu: {name}, {torch.backends.cpu.get_cpu_capability()}, bfloat16 {bfloat16}"


def device_label(device: torch.device) -> str:
    """What ran a coalition, as its store row records it: the GPU's name, or the CPU's."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_label() if device.type == "cpu" else str(device)


def resolve_dtype(dtype: DType, device: str) -> DType:
    """`auto` as a concrete dtype for this device; any other dtype as it is."""
    if dtype is not DType.AUTO:
        return dtype
    return DType.BFLOAT16 if native_bfloat16(device) else DType.FLOAT32


def warn_if_emulated(dtype: DType, device: str) -> None:
    """One warning when bfloat16 will run emulated: the user asked for it, so it is kept, but slow."""
    if dtype is DType.BFLOAT16 and torch.device(device).type == "cpu" and not native_bfloat16(device):
        warnings.warn(
            "this CPU has no bfloat16 instructions (AMX or AVX512-BF16): bfloat16 runs several times slower "
            "than float32 here; --dtype auto (or float32) picks float32",
            stacklevel=3,
        )
