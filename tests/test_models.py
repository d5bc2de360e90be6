"""Model specs: embedded names, .gguf files, local checkpoints and hub ids, each with a stable identity."""

from __future__ import annotations

import pytest
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
