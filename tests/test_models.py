"""Model specs: embedded names, .gguf files, local checkpoints and hub ids, each with a stable identity."""

from __future__ import annotations

import pytest
import torch
from tiny_models import tiny_model

from lsi.assets import embedded_gguf, embedded_models
from lsi.models import load_model, parse_dtype

pytestmark = pytest.mark.slow


def test_embedded_identity_is_the_pinned_weights_hash(smollm):
    info = embedded_models()["smollm2-135m"]
    assert smollm.identity.weights_sha256 == info.sha256
    assert smollm.identity.family == "llama" and smollm.identity.n_blocks == 30
    assert smollm.identity.source == "embedded" and smollm.add_bos_token is False


def test_gguf_file_spec_hashes_the_same_bytes(tmp_path, monkeypatch):
    monkeypatch.setenv("LSI_CACHE", str(tmp_path))  # fresh hash memo: the hash is really computed
    lm = load_model(str(embedded_gguf("smollm2-135m")))
    assert lm.identity.source == "gguf"
    assert lm.identity.weights_sha256 == embedded_models()["smollm2-135m"].sha256


def test_local_checkpoint_directory(tmp_path, smollm):
    model = tiny_model("llama")
    model.save_pretrained(tmp_path / "ckpt")
    smollm.tokenizer.save_pretrained(tmp_path / "ckpt")
    lm = load_model(str(tmp_path / "ckpt"), dtype="bfloat16")
    assert (
        lm.identity.source == "local" and lm.identity.n_blocks == 4 and len(lm.identity.weights_sha256) == 64
    )
    assert lm.model.dtype == parse_dtype("bfloat16")
    again = load_model(str(tmp_path / "ckpt"))
    assert again.identity.weights_sha256 == lm.identity.weights_sha256


def test_auto_dtype_is_recorded_as_what_it_resolved_to(tmp_path, smollm, monkeypatch):
    from lsi.hardware import native_bfloat16

    tiny_model("llama").save_pretrained(tmp_path / "ckpt")
    smollm.tokenizer.save_pretrained(tmp_path / "ckpt")
    for native, dtype in [(False, torch.float32), (True, torch.bfloat16)]:
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda native=native: native)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
        native_bfloat16.cache_clear()
        lm = load_model(str(tmp_path / "ckpt"), dtype="auto")
        assert lm.model.dtype == dtype and parse_dtype(lm.dtype) == dtype
    native_bfloat16.cache_clear()


def test_unknown_model_and_dtype_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown model 'not-a-model'.*lsi models"):
        load_model("not-a-model")
    with pytest.raises(ValueError, match="GGUF file .* does not exist"):
        load_model(str(tmp_path / "missing.gguf"))
    with pytest.raises(ValueError, match="unknown dtype 'fp8'"):
        parse_dtype("fp8")


def test_hub_ids_take_the_ordinary_hub_path(monkeypatch):
    import huggingface_hub

    asked = []

    def offline(repo_id, **_):
        asked.append(repo_id)
        raise OSError("no connection")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(ValueError, match="unknown model 'org/model'.*hub could not provide it"):
        load_model("org/model")
    assert asked == ["org/model"]


CUSTOM_CODE = """
import os
from pathlib import Path

from transformers import LlamaConfig, LlamaForCausalLM

Path(os.environ["LSI_REMOTE_CODE_MARKER"]).write_text("the checkpoint's own code ran")


class ShippedConfig(LlamaConfig):
    model_type = "shipped_llama"


class ShippedModel(LlamaForCausalLM):
    config_class = ShippedConfig
"""


def test_a_checkpoints_own_code_runs_only_when_trusted(tmp_path, smollm, monkeypatch):
    """A checkpoint whose config names its own classes (auto_map) is refused in one line; its code
    runs (and writes the marker) only with trust_remote_code."""
    import json

    from lsi.architectures import UnsupportedModelError
    from lsi.errors import UserError

    folder = tmp_path / "shipped"
    tiny_model("llama").save_pretrained(folder)
    smollm.tokenizer.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config |= {
        "model_type": "shipped_llama",
        "auto_map": {"AutoConfig": "shipped.ShippedConfig", "AutoModelForCausalLM": "shipped.ShippedModel"},
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "shipped.py").write_text(CUSTOM_CODE)
    marker = tmp_path / "marker"
    monkeypatch.setenv("LSI_REMOTE_CODE_MARKER", str(marker))
    with pytest.raises(UserError, match="ships its own model code.*--trust-remote-code"):
        load_model(str(folder))
    assert not marker.exists()
    with pytest.raises(UnsupportedModelError, match="'shipped_llama'"):  # lsi's table, after the code ran
        load_model(str(folder), trust_remote_code=True)
    assert marker.exists()
