"""The engine on a model whose parts live on different devices, as accelerate's `device_map` leaves it:
the same log-likelihoods as on one device, with blocks offloaded to disk (their weights on `meta`
until the hooks load them) and with blocks on another device and no hooks at all."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers as T
from accelerate import dispatch_model
from accelerate.hooks import AlignDevicesHook, ModelHook, add_hook_to_module
from accelerate.utils.offload import OffloadedWeightsLoader
from test_engine import BLOCK_COALITIONS, MAX_LENGTH, REQUESTS, SUBLAYER_COALITIONS
from tiny_models import N_BLOCKS, tiny_model

import lsi.engine
from lsi.engine import Engine, execution_device, make_batches, score_requests
from lsi.players import list_players

BATCHES = make_batches(REQUESTS, MAX_LENGTH, batch_tokens=64)
COALITIONS = {
    "block": [*BLOCK_COALITIONS, "1101"],  # 1101: a disk block skipped, the one after it kept
    "sublayer": SUBLAYER_COALITIONS,
}
HALF = N_BLOCKS // 2
MODULES = ["model.embed_tokens", "model.rotary_emb", *[f"model.layers.{b}" for b in range(N_BLOCKS)]]
MODULES += ["model.norm", "lm_head"]


def test_execution_device_is_the_hooks_not_the_weights():
    cpu = torch.device("cpu")
    assert execution_device(torch.nn.Linear(2, 2)) == cpu
    offloaded = add_hook_to_module(torch.nn.Linear(2, 2), AlignDevicesHook(cpu, offload=True))
    assert offloaded.weight.device.type == "meta" and execution_device(offloaded) == cpu
    add_hook_to_module(offloaded, ModelHook(), append=True)  # now a SequentialHook of the two
    assert type(offloaded._hf_hook).__name__ == "SequentialHook" and execution_device(offloaded) == cpu


def _half_on_disk(tmp_path) -> T.PreTrainedModel:
    """Saved and loaded again with from_pretrained: embeddings and the first blocks on the CPU, the rest
    of the blocks, the final norm and the head offloaded to disk."""
    tiny_model("llama").save_pretrained(tmp_path / "model")
    on_cpu = {"model.embed_tokens", "model.rotary_emb", *[f"model.layers.{b}" for b in range(HALF)]}
    device_map = {name: "cpu" if name in on_cpu else "disk" for name in MODULES}
    return T.AutoModelForCausalLM.from_pretrained(
        tmp_path / "model", device_map=device_map, offload_folder=tmp_path / "offload", dtype=torch.float32
    ).eval()


def _all_on_disk(tmp_path) -> T.PreTrainedModel:
    """Dispatched in memory with every module on disk, the embedding too (all parameters on meta)."""
    return dispatch_model(tiny_model("llama"), {name: "disk" for name in MODULES}, offload_dir=tmp_path)


@pytest.mark.parametrize("load", [_half_on_disk, _all_on_disk])
@pytest.mark.parametrize("granularity", ["block", "sublayer"])
def test_offloaded_model_scores_as_the_plain_model(tmp_path, load, granularity):
    plain = tiny_model("llama")
    players = list_players(plain, granularity)
    coalitions = COALITIONS[granularity]
    expected, expected_greedy = score_requests(Engine(plain, players), BATCHES, coalitions, len(REQUESTS))
    model = load(tmp_path)
    assert {p.device.type for p in model.model.layers[-1].parameters()} == {"meta"}  # truly offloaded
    engine = Engine(model, players)
    assert engine.device == torch.device("cpu")  # the embedding's execution device, not meta
    loglik, greedy = score_requests(engine, BATCHES, coalitions, len(REQUESTS))
    np.testing.assert_allclose(loglik, expected, rtol=1e-5, atol=0)
    assert np.array_equal(greedy, expected_greedy)


def test_removed_players_are_not_read_from_disk(tmp_path, monkeypatch):
    """accelerate's hooks sit on the leaf modules, so a skipped block or branch loads nothing."""
    model = _half_on_disk(tmp_path)
    engine = Engine(model, list_players(model, "sublayer"))
    read: list[str] = []
    getitem = OffloadedWeightsLoader.__getitem__
    monkeypatch.setattr(
        OffloadedWeightsLoader, "__getitem__", lambda self, key: read.append(key) or getitem(self, key)
    )
    engine.run(BATCHES[0], ["11110010"], len(REQUESTS))  # block 2 and the MLP of block 3 (on disk) removed
    assert "model.layers.3.self_attn.q_proj.weight" in read and "lm_head.weight" in read
    assert not [key for key in read if key.startswith(("model.layers.2.", "model.layers.3.mlp."))]


def _devices(value: object) -> set[torch.device]:
    """The devices of every tensor in a block call's (nested) arguments."""
    if isinstance(value, torch.Tensor):
        return {value.device}
    if isinstance(value, tuple | list):
        return set().union(*map(_devices, value)) if value else set()
    if isinstance(value, dict):
        return _devices(list(value.values()))
    return set()


def test_blocks_on_two_devices_without_hooks(monkeypatch):
    """Two real devices without a GPU: CPU and meta (shapes only). The second half of the blocks and the
    tail are moved to meta with no hooks, so only the engine's own moves can bring every input there;
    sibling streams meet at the last block from both devices (1111 went through block 2, 1101 skipped it).
    """
    model = tiny_model("llama")
    for module in (*model.model.layers[HALF:], model.model.norm, model.lm_head):
        module.to("meta")
    seen: list[tuple[int, set[torch.device]]] = []
    for b, block in enumerate(model.model.layers):
        block.register_forward_pre_hook(
            lambda _m, args, kwargs, b=b: seen.append((b, _devices([args, kwargs]))), with_kwargs=True
        )
    heads: list[tuple[torch.device, torch.device, int]] = []

    def fake_logprobs(logits, targets, softcap):  # meta logits have no values: record where they ran
        heads.append((logits.device, targets.device, logits.shape[0]))
        return torch.zeros(len(targets), dtype=torch.float64), torch.ones(len(targets), dtype=torch.bool)

    monkeypatch.setattr(lsi.engine, "target_logprobs", fake_logprobs)
    engine = Engine(model, list_players(model, "block"))
    assert engine.device == torch.device("cpu")
    assert [execution_device(b).type for b in model.model.layers] == ["cpu"] * HALF + ["meta"] * HALF
    coalitions = ["1111", "1101", "1100", "0011"]
    batch = BATCHES[0]
    engine.run(batch, coalitions, len(REQUESTS))
    expected = {b: {torch.device("cpu" if b < HALF else "meta")} for b in range(N_BLOCKS)}
    assert seen and all(devices == expected[b] for b, devices in seen)
    assert {b for b, _ in seen} == set(range(N_BLOCKS))
    meta = torch.device("meta")
    assert heads == [(meta, meta, len(batch.scored))] * len(coalitions)
