"""A GGUF model's plain checkpoint, converted once and reused.

transformers reads a GGUF file by parsing it and dequantising every tensor on every load, and it
converts the tokenizer too: about half a minute for SmolLM2 on 2 cores and minutes for Gemma-3, paid
by every CLI call, notebook kernel and Ray worker. The same float32 tensors saved as safetensors load
in under a second and are bit-identical, so each GGUF file is converted once into the cache, keyed by
the hash of its bytes and the transformers version that converted it (the conversion is that
version's code). `LSI_GGUF_CACHE=0` loads from the GGUF file every time instead.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from lsi.assets import cache_dir
from lsi.provenance import now, versions

RECORD = "lsi-converted.json"  # written last: a folder without it is an unfinished conversion


def enabled() -> bool:
    return os.environ.get("LSI_GGUF_CACHE", "1") != "0"


def converted_dir(sha256: str) -> Path:
    return cache_dir() / "converted" / f"{sha256[:16]}-transformers-{transformers.__version__}"


def ready(sha256: str) -> Path | None:
    """The converted checkpoint of the GGUF file whose bytes hash to `sha256`, if it exists."""
    target = converted_dir(sha256)
    return target if enabled() and (target / RECORD).is_file() else None


def converted(directory: Path, gguf_file: str, sha256: str) -> Path:
    """The plain checkpoint of `directory/gguf_file` (whose bytes hash to `sha256`), converting it
    on first use."""
    if (done := ready(sha256)) is not None:
        return done
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=gguf_file, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=gguf_file)
    return save(model, tokenizer, gguf_file, sha256)


def save(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, gguf_file: str, sha256: str) -> Path:
    """Write a float32 GGUF-loaded model and its tokenizer as the file's converted checkpoint.
    Written beside it and renamed into place: concurrent conversions each finish, the first wins."""
    target = converted_dir(sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        plain_copy(model).save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        record = {"gguf": gguf_file, "gguf_sha256": sha256, "made": now(), "versions": versions()}
        (staging / RECORD).write_text(json.dumps(record, indent=1) + "\n")
        try:
            staging.rename(target)
        except OSError:  # another process renamed its conversion into place first
            if not (target / RECORD).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def plain_copy(model: PreTrainedModel) -> PreTrainedModel:
    """The same tensors in a model without GGUF's quantisation record (transformers will not save one
    that has it); built on the meta device, so no weights are initialised only to be replaced."""
    from accelerate import init_empty_weights

    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with init_empty_weights():
        plain = AutoModelForCausalLM.from_config(config, dtype=model.dtype)
    plain.load_state_dict(model.state_dict(), strict=True, assign=True)
    plain.tie_weights()
    return plain.eval()
