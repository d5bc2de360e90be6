"""Load a decoder LLM from any spec (embedded name, GGUF file, local checkpoint, hub id) with a
stable identity (name + weights hash) that every result records.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from lsi import gguf_cache
from lsi.allocator import retain_freed_memory
from lsi.architectures import architecture, get_path
from lsi.assets import cache_dir, embedded_gguf, embedded_models
from lsi.choices import DType
from lsi.errors import UserError
from lsi.hardware import resolve_dtype, warn_if_emulated

DTYPES = {DType.FLOAT32: torch.float32, DType.BFLOAT16: torch.bfloat16, DType.FLOAT16: torch.float16}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")


@dataclass(frozen=True)
class ModelIdentity:
    """What a result was computed with: enough to refuse mixing two models in one store."""

    name: str  # the spec as the user gave it (embedded name, path or hub id)
    title: str
    source: str  # "embedded", "gguf", "local" or "hub"
    family: str  # transformers model_type
    n_blocks: int
    weights_sha256: str  # over the weight files, in name order

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    identity: ModelIdentity
    dtype: str
    add_bos_token: bool | None  # passed to lm-eval's HFLM, which encodes every prompt

    def hflm(self, batch_size: int = 1):  # noqa: ANN201 - lm-eval's HFLM, imported lazily (slow import)
        """lm-eval's own wrapper around this very model: its tokenisation is the one lsi scores."""
        from lsi.lm_eval_adapter import hflm

        return hflm(self.model, self.tokenizer, self.add_bos_token, batch_size)


def _quiet_gguf_conversion() -> None:
    """Under the CLI (`LSI_QUIET_LOADING=1`) transformers' per-tensor GGUF conversion bar (plain
    tqdm, without a switch) is patched off; the CLI switches off the library's other bars itself."""
    if os.environ.get("LSI_QUIET_LOADING") != "1":
        return
    import functools

    import transformers.modeling_gguf_pytorch_utils as gguf_loading

    if not isinstance(gguf_loading.tqdm, functools.partial):
        gguf_loading.tqdm = functools.partial(gguf_loading.tqdm, disable=True)


def parse_dtype(name: str, device: str = "cpu") -> torch.dtype:
    """The torch dtype of a name; `auto` as `lsi.hardware` resolves it for the device."""
    return DTYPES[resolve_dtype(DType.parse(name), device)]


def _sha256_files(paths: list[Path]) -> str:
    """Hash of the files' bytes in order, remembered per (path, size, mtime) so reloads cost nothing."""
    memo_path = cache_dir() / "weights-sha256.json"
    memo = json.loads(memo_path.read_text()) if memo_path.exists() else {}
    keys = [f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths]
    joined = "|".join(keys)
    if joined not in memo:
        digest = hashlib.sha256()
        for p in paths:
            with p.open("rb") as f:
                while chunk := f.read(1 << 22):
                    digest.update(chunk)
        memo[joined] = digest.hexdigest()
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(memo, indent=1))
        tmp.replace(memo_path)
    return memo[joined]


def gguf_path(spec: str) -> Path | None:
    """The GGUF file a model spec loads from (None for checkpoints): a job can carry it instead of
    the dequantised weights, which are 2-4x larger."""
    _source, directory, gguf_file, _title, _pinned = _resolve(spec)
    return directory / gguf_file if gguf_file else None


def _resolve(spec: str) -> tuple[str, Path, str | None, str, str | None]:
    """(source, directory, gguf file name, title, pinned sha256) for a model spec."""
    embedded = embedded_models()
    if spec in embedded:
        info = embedded[spec]
        path = embedded_gguf(spec)
        return "embedded", path.parent, path.name, info.title, info.sha256
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise UserError(f"GGUF file '{spec}' does not exist; give the path of a .gguf file")
        return "gguf", path.parent, path.name, path.stem, None
    if path.is_dir():
        return "local", path, None, path.name, None
    if path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") != 1:
        raise UserError(
            f"unknown model '{spec}': not an embedded name ({', '.join(embedded)}), not a .gguf file, "
            "not a local checkpoint directory, and not a hub id of the form org/name (see `lsi models`)"
        )
    return "hub", _hub_snapshot(spec), None, spec, None


def _hub_snapshot(repo_id: str) -> Path:
    """Download (or find in the HF cache) a hub checkpoint; the ordinary path for users with internet."""
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt"])
        )
    except Exception as err:  # the hub client raises many types; all mean the same thing here
        raise UserError(
            f"unknown model '{repo_id}': it is not embedded and the Hugging Face hub could not provide it "
            f"({type(err).__name__}); check the id and your connection, or pass a local path "
            "(see `lsi models`)"
        ) from err


def load_model(
    spec: str,
    dtype: str = "float32",
    device: str = "cpu",
    device_map: str | dict | None = None,
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load a CausalLM for scoring, in eval mode, with SDPA attention where the family allows it.

    `device_map` (accelerate's: "balanced", or module name -> device, "cpu" or "disk") splits a model
    too large for one device over several; `device` is then ignored. `trust_remote_code`: run the
    Python code a checkpoint ships (its config's `auto_map`); without it such a model is refused."""
    chosen = resolve_dtype(DType.parse(dtype), device)
    torch_dtype = DTYPES[chosen]
    if device_map is None and torch.device(device).type == "cpu":
        retain_freed_memory()
        warn_if_emulated(chosen, device)
    source, directory, kwargs, title, sha = _checkpoint(spec, trust_remote_code)
    with _remote_code_refused(spec):
        if device_map is None:
            model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch_dtype, **kwargs).to(device)
        else:
            offload = {"offload_folder": str(cache_dir() / "offload")} if "disk" in str(device_map) else {}
            model = AutoModelForCausalLM.from_pretrained(
                directory, dtype=torch_dtype, device_map=device_map, **offload, **kwargs
            )
    return _loaded(spec, model.eval(), directory, kwargs, source, title, sha, chosen.value)


def load_skeleton(spec: str, dtype: str = "float32", trust_remote_code: bool = False) -> LoadedModel:
    """The model's structure on the meta device, with its tokenizer and identity, and no weights read:
    enough for players, configuration and lm-eval's tokenisation (a Ray driver on a login node)."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig

    chosen = resolve_dtype(DType.parse(dtype), "cpu")
    # A driver on a login node reads the GGUF file's header rather than converting the weights.
    source, directory, kwargs, title, sha = _checkpoint(spec, trust_remote_code, convert=False)
    with _remote_code_refused(spec):
        config = AutoConfig.from_pretrained(directory, **kwargs)
        with init_empty_weights():
            model = AutoModelForCausalLM.from_config(
                config, dtype=DTYPES[chosen], trust_remote_code=trust_remote_code
            )
    return _loaded(spec, model.eval(), directory, kwargs, source, title, sha, chosen.value)


def _checkpoint(
    spec: str, trust_remote_code: bool, convert: bool = True
) -> tuple[str, Path, dict[str, object], str, str | None]:
    """(source, directory, from_pretrained keyword arguments, title, weights sha256 if known) to load
    `spec` from: a GGUF file's converted checkpoint where `lsi.gguf_cache` is on (made now only if
    `convert`), keeping the GGUF file's hash as the identity."""
    source, directory, gguf_file, title, pinned = _resolve(spec)
    kwargs: dict[str, object] = {"trust_remote_code": trust_remote_code}
    if gguf_file is None:
        return source, directory, kwargs, title, pinned
    sha = pinned or _sha256_files([directory / gguf_file])
    if (done := gguf_cache.ready(sha)) is not None:
        return source, done, kwargs, title, sha
    _quiet_gguf_conversion()
    if convert and gguf_cache.enabled():
        return source, gguf_cache.converted(directory, gguf_file, sha), kwargs, title, sha
    return source, directory, kwargs | {"gguf_file": gguf_file}, title, sha


@contextlib.contextmanager
def _remote_code_refused(spec: str) -> Iterator[None]:
    """transformers' refusal of a checkpoint's own code, as one line that names the flag."""
    try:
        yield
    except ValueError as err:
        if "trust_remote_code" not in str(err):
            raise
        raise UserError(
            f"{spec} ships its own model code (auto_map in its config), which lsi runs only with "
            "--trust-remote-code: read that code first"
        ) from None


def _loaded(
    spec: str,
    model: PreTrainedModel,
    directory: Path,
    kwargs: dict[str, object],
    source: str,
    title: str,
    sha: str | None,
    dtype: str,
) -> LoadedModel:
    """The loaded (or skeleton) model with its tokenizer and identity (the weight files' hash)."""
    model.config.use_cache = False
    with _remote_code_refused(spec):
        tokenizer = AutoTokenizer.from_pretrained(directory, **kwargs)
    n_blocks = len(get_path(model, architecture(model).layers))
    if sha is None:
        sha = _sha256_files(sorted(p for p in directory.iterdir() if p.suffix in _WEIGHT_SUFFIXES))
    identity = ModelIdentity(spec, title, source, model.config.model_type, n_blocks, sha)
    add_bos = embedded_models()[spec].add_bos_token if source == "embedded" else None
    return LoadedModel(model, tokenizer, identity, dtype, add_bos)
