"""The fast forward: many coalitions x many log-likelihood requests in one pass over the blocks.

Three kinds of shared work, none of which changes a number beyond float rounding:
- shared contexts: the requests of one document that share a context are packed into one row
  (context once, then each continuation's tokens), with an attention mask that lets every
  continuation see the context and itself only, and position ids that continue from the context;
- a prefix tree over coalitions: blocks run in order, and coalitions that agree on every player
  so far share one residual stream; it forks only where they first differ, and sibling streams
  that take the same branch pattern through a block run as one stacked call;
- scored positions only: the final norm and the output head run on the positions whose
  log-probabilities lm-eval sums, not on every context token.

The decoder blocks themselves are the model's own modules, called with the very arguments the
model's forward passes them (captured once per batch), so no family's forward is copied here.

Blocks may live on different devices (accelerate's `device_map`, disk offload included): each kept
block gets the residual and its arguments on its own execution device, and the tail runs where it lives.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lsi.architectures import architecture, get_path, set_path
from lsi.errors import UserError
from lsi.masking import branches_removed
from lsi.players import Player


@dataclass(frozen=True)
class TokenRequest:
    """One loglikelihood request as lm-eval encodes it (before its left truncation)."""

    context: tuple[int, ...]
    continuation: tuple[int, ...]


@dataclass
class Batch:
    """Packed rows ready for the model, with where each request's scored positions lie."""

    input_ids: torch.Tensor  # [B, T]
    position_ids: torch.Tensor  # [B, T]
    segment: torch.Tensor  # [B, T]: -1 shared context, -2 padding, j >= 0 the j-th continuation
    scored: torch.Tensor  # [S] flat indices into B*T
    targets: torch.Tensor  # [S] token predicted at each scored position
    owner: torch.Tensor  # [S] request index (into the request list) of each scored position
    requests: torch.Tensor  # request indices present in this batch


@dataclass
class _Pack:
    prefix: tuple[int, ...]
    segments: list[tuple[int, ...]]
    targets: list[tuple[int, ...]]
    request_ids: list[int]

    @property
    def length(self) -> int:
        return len(self.prefix) + sum(len(s) for s in self.segments)


def lm_eval_input(request: TokenRequest, max_length: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """lm-eval's model input and scored targets: (ctx + cont)[-(max_length + 1):][:-1] and cont."""
    whole = (request.context + request.continuation)[-(max_length + 1) :]
    return whole[:-1], request.continuation


def _packs(requests: Sequence[TokenRequest], max_length: int, share_contexts: bool) -> list[_Pack]:
    """Group requests whose inputs agree up to their first scored position."""
    packs: dict[object, _Pack] = {}
    for rid, request in enumerate(requests):
        inp, cont = lm_eval_input(request, max_length)
        cut = len(inp) - len(cont) + 1  # the prefix ends with the first scored position
        prefix, segment = inp[:cut], inp[cut:]
        key = prefix if share_contexts else rid
        pack = packs.setdefault(key, _Pack(prefix, [], [], []))
        pack.segments.append(segment)
        pack.targets.append(cont)
        pack.request_ids.append(rid)
    return list(packs.values())


def make_batches(
    requests: Sequence[TokenRequest],
    max_length: int,
    batch_tokens: int,
    max_rows: int = 64,
    share_contexts: bool = True,
    max_padding: float = 0.2,
) -> list[Batch]:
    """Length-sorted batches of packed rows: at most `max_rows` rows and `batch_tokens` padded tokens,
    and no row shorter than `1 - max_padding` of its batch's longest (padding is computed for nothing)."""
    packs = sorted(_packs(requests, max_length, share_contexts), key=lambda p: -p.length)
    groups: list[list[_Pack]] = []
    for pack in packs:
        rows = len(groups[-1]) + 1 if groups else 0
        longest = groups[-1][0].length if groups else 0
        fits = rows <= max_rows and rows * longest <= batch_tokens
        fits = fits and pack.length >= (1 - max_padding) * longest
        if groups and fits:
            groups[-1].append(pack)
        else:
            groups.append([pack])
    return [_batch(group) for group in groups]


def _batch(group: list[_Pack]) -> Batch:
    width = group[0].length
    ids = np.zeros((len(group), width), dtype=np.int64)
    pos = np.zeros((len(group), width), dtype=np.int64)
    seg = np.full((len(group), width), -2, dtype=np.int64)
    scored, targets, owner = [], [], []
    for row, pack in enumerate(group):
        n = len(pack.prefix)
        ids[row, :n], pos[row, :n], seg[row, :n] = pack.prefix, np.arange(n), -1
        at = n
        for j, (segment, target, rid) in enumerate(
            zip(pack.segments, pack.targets, pack.request_ids, strict=True)
        ):
            k = len(segment)
            ids[row, at : at + k], pos[row, at : at + k], seg[row, at : at + k] = segment, n + np.arange(k), j
            # First target is predicted at the last prefix position, the rest inside the segment.
            positions = [n - 1, *range(at, at + k)]
            scored += [row * width + p for p in positions]
            targets += list(target)
            owner += [rid] * len(positions)
            at += k
        pos[row, at:] = np.arange(width - at) + at  # padding: harmless distinct positions
    rids = sorted({r for pack in group for r in pack.request_ids})
    as_long = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.long)  # noqa: E731
    return Batch(
        as_long(ids),
        as_long(pos),
        as_long(seg),
        as_long(scored),
        as_long(targets),
        as_long(owner),
        as_long(rids),
    )


def attention_mask(batch: Batch, window: int | None, additive_dtype: torch.dtype | None) -> torch.Tensor:
    """[B, 1, T, T] mask: causal, context visible to all, each continuation private, optional window.

    Boolean (True = attend) for SDPA; additive (0 / dtype min) for eager attention.
    """
    seg, pos = batch.segment, batch.position_ids
    t = seg.shape[1]
    idx = torch.arange(t)
    causal = idx[None, :, None] >= idx[None, None, :]
    seg_q, seg_k = seg[:, :, None], seg[:, None, :]
    visible = (seg_k == -1) | (seg_k == seg_q)
    allowed = causal & visible & (seg_q != -2)
    if window is not None:
        allowed &= (pos[:, :, None] - pos[:, None, :]) < window
    allowed |= torch.eye(t, dtype=torch.bool)[None]  # padding rows attend to themselves: no NaN
    allowed = allowed[:, None]
    if additive_dtype is None:
        return allowed
    return torch.zeros(allowed.shape, dtype=additive_dtype).masked_fill(
        ~allowed, torch.finfo(additive_dtype).min
    )


class _Recorder(nn.Module):
    """Stands in for a block during the capture pass: remembers its call, returns its input."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.signature = inspect.signature(block.forward)
        self.call: inspect.BoundArguments | None = None

    def forward(self, *args: object, **kwargs: object) -> object:
        self.call = self.signature.bind(*args, **kwargs)
        return self.call.arguments[next(iter(self.signature.parameters))]


def execution_device(module: nn.Module) -> torch.device:
    """Where a module computes: the device its inputs must be on before it is called.

    Under accelerate's hooks (`device_map`) that is the hook's `execution_device`, not where the
    weights sit: offloaded weights are on `meta` until the hook loads them at call time. A module
    without hooks computes where its weights are.
    """
    hook = getattr(module, "_hf_hook", None)
    for h in getattr(hook, "hooks", (hook,)):  # a SequentialHook chains several
        if getattr(h, "execution_device", None) is not None:
            return torch.device(h.execution_device)
    return next(module.parameters()).device


def _to_device(value: object, device: torch.device) -> object:
    """Tensors (also inside tuples, lists and dicts) on `device`; anything else as it is."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, tuple | list):
        return type(value)(_to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {key: _to_device(v, device) for key, v in value.items()}
    return value


def target_logprobs(
    logits: torch.Tensor, targets: torch.Tensor, softcap: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(target) (float64, on the CPU) and whether the target is the argmax, for each row of logits.

    Rows go through float32 a few at a time: a float32 copy of all rows at once (gigabytes with a
    262k vocabulary) costs more in page faults and memory traffic than the output head's matmul.
    On a GPU, larger steps keep the kernels busy.
    """
    rows = 16 if logits.device.type == "cpu" else 1024
    token_lp = torch.empty(len(targets), dtype=torch.float32, device=logits.device)
    is_max = torch.empty(len(targets), dtype=torch.bool, device=logits.device)
    for at in range(0, len(targets), rows):
        x = logits[at : at + rows].float()
        if softcap is not None:
            x = torch.tanh(x / softcap) * softcap
        t = targets[at : at + rows]
        target = x.gather(1, t[:, None])[:, 0]
        top = x.amax(-1)
        token_lp[at : at + rows] = target - (top + (x - top[:, None]).exp_().sum(-1).log_())
        # The argmax is the first maximum: a target tied with an earlier token is not greedy.
        at_top = target == top
        is_max[at : at + rows] = at_top
        if at_top.any():
            is_max[at : at + rows][at_top] = x[at_top].argmax(-1) == t[at_top]
    return token_lp.double().cpu(), is_max.cpu()


class Engine:
    """Scores log-likelihood requests for many coalitions of one model's players."""

    def __init__(self, model: nn.Module, players: tuple[Player, ...], stack_tokens: int = 16384) -> None:
        self.model = model
        self.stack_tokens = stack_tokens  # most tokens in one stacked block call (bounds its memory)
        self.players = players
        self.arch = architecture(model)
        self.layers = get_path(model, self.arch.layers)
        self.base = get_path(model, self.arch.layers.rpartition(".")[0])
        self.tail = [m for m in (get_path(model, p) for p in self.arch.tail) if m is not None]
        # Tail modules the base's own forward calls (the final norm): skipped in the capture pass,
        # whose output is discarded, so it neither computes them nor needs them on its device.
        inside = self.arch.layers.rpartition(".")[0] + "."
        self.base_tail = [
            p for p in self.arch.tail if p.startswith(inside) and get_path(model, p) is not None
        ]
        config = model.config
        self.softcap = getattr(config, "final_logit_softcapping", None)
        self.block_players: list[list[Player]] = [[] for _ in self.layers]
        for p in players:
            self.block_players[p.block].append(p)
        layer_types = getattr(config, "layer_types", None) or ["full_attention"] * len(self.layers)
        window = getattr(config, "sliding_window", None)
        self.windows = [window if t == "sliding_attention" else None for t in layer_types]
        impl = config._attn_implementation
        if impl not in ("sdpa", "eager"):
            raise UserError(
                f"attention implementation '{impl}' cannot take lsi's packed masks; load the model with "
                "attn_implementation='sdpa' (or 'eager')"
            )
        self.additive_dtype = None if impl == "sdpa" else model.dtype

    @property
    def device(self) -> torch.device:
        """Where the capture pass's inputs go: the embedding's execution device (never `meta`)."""
        return execution_device(self.model.get_input_embeddings())

    def _capture(
        self, batch: Batch, devices: list[torch.device]
    ) -> tuple[torch.Tensor, list[inspect.BoundArguments]]:
        """Embeddings and each block's call arguments, as the model's own forward builds them.

        The arguments (masks, position embeddings, ...) are moved to each block's execution device
        here, one copy per device, so that blocks on other devices need no hooks to run.
        """
        recorders = [_Recorder(block) for block in self.layers]
        stand_ins = [(self.arch.layers, nn.ModuleList(recorders))]
        stand_ins += [(path, nn.Identity()) for path in self.base_tail]
        originals = [(path, get_path(self.model, path)) for path, _ in stand_ins]
        try:
            for path, module in stand_ins:
                set_path(self.model, path, module)
            self.base(
                input_ids=batch.input_ids.to(self.device),
                position_ids=batch.position_ids.to(self.device),
                use_cache=False,
            )
        finally:
            for path, module in originals:
                set_path(self.model, path, module)
        masks: dict[int | None, torch.Tensor] = {}
        calls = []
        for recorder, window in zip(recorders, self.windows, strict=True):
            call = recorder.call
            assert call is not None and "attention_mask" in call.signature.parameters
            if window not in masks:
                masks[window] = attention_mask(batch, window, self.additive_dtype).to(self.device)
            call.arguments["attention_mask"] = masks[window]
            calls.append(call)
        first = next(iter(calls[0].signature.parameters))
        moved: dict[tuple[int, torch.device], tuple[object, object]] = {}  # the original kept alive
        for device, call in zip(devices, calls, strict=True):
            for name, value in call.arguments.items():
                if name != first:
                    key = (id(value), device)
                    if key not in moved:
                        moved[key] = (value, _to_device(value, device))
                    call.arguments[name] = moved[key][1]
        return calls[0].arguments[first], calls

    @torch.inference_mode()
    def run(self, batch: Batch, coalitions: Sequence[str], n_requests: int) -> tuple[np.ndarray, np.ndarray]:
        """Summed continuation log-probs and greedy flags, [coalition, request] (absent requests: 0)."""
        devices = [execution_device(block) for block in self.layers]
        hidden, calls = self._capture(batch, devices)
        loglik = np.zeros((len(coalitions), n_requests))
        greedy = np.zeros((len(coalitions), n_requests), dtype=bool)
        tail = [(module, execution_device(module)) for module in self.tail]
        copies: dict[tuple[str, torch.device], torch.Tensor] = {}

        def on(name: str, device: torch.device) -> torch.Tensor:
            """batch.scored or batch.targets on a device, copied once per batch, not once per leaf."""
            if (name, device) not in copies:
                copies[name, device] = getattr(batch, name).to(device)
            return copies[name, device]

        def leaf(h: torch.Tensor, members: list[int]) -> None:
            # The last kept block may sit elsewhere than the tail: pick the scored rows first, move less.
            x = h.reshape(-1, h.shape[-1]).index_select(0, on("scored", h.device))
            for module, device in tail:
                x = module(x.to(device))
            token_lp, is_max = target_logprobs(x, on("targets", x.device), self.softcap)
            sums = torch.zeros(n_requests, dtype=torch.float64).index_add_(0, batch.owner, token_lp)
            misses = torch.zeros(n_requests, dtype=torch.long).index_add_(0, batch.owner, (~is_max).long())
            for c in members:
                loglik[c] = sums.numpy()
                greedy[c] = (misses == 0).numpy()

        # Level by level: nodes are distinct prefixes (a residual stream and the coalitions sharing it).
        # Siblings that take the same branch pattern at a block run as one stacked call.
        nodes: list[tuple[torch.Tensor, list[int]]] = [(hidden, list(range(len(coalitions))))]
        rows, width = hidden.shape[:2]
        per_call = max(1, self.stack_tokens // (rows * width))
        for block, owned in enumerate(self.block_players):
            groups: dict[tuple[str, ...], list[tuple[torch.Tensor, list[int]]]] = {}
            for h, members in nodes:
                forks: dict[tuple[str, ...], list[int]] = {}
                for c in members:
                    forks.setdefault(tuple(coalitions[c][p.index] for p in owned), []).append(c)
                for pattern, sub in forks.items():
                    groups.setdefault(pattern, []).append((h, sub))
            nodes = []
            for pattern, items in groups.items():
                removed = [p.kind for p, bit in zip(owned, pattern, strict=True) if bit == "0"]
                if owned and len(removed) == len(owned):
                    nodes += items
                    continue
                with branches_removed(self.model, self.layers[block], removed):
                    for at in range(0, len(items), per_call):
                        part = items[at : at + per_call]
                        # Siblings may come from different devices (one went through a block elsewhere).
                        streams = [h.to(devices[block]) for h, _ in part]
                        out = self._stacked_call(self.layers[block], calls[block], streams, rows)
                        nodes += [(out[i * rows : (i + 1) * rows], sub) for i, (_, sub) in enumerate(part)]
        for h, members in nodes:
            leaf(h, members)
        return loglik, greedy

    @staticmethod
    def _stacked_call(
        block: nn.Module, call: inspect.BoundArguments, hidden: list[torch.Tensor], rows: int
    ) -> torch.Tensor:
        """Run one block on k residual streams at once: per-row arguments are repeated k times."""
        first = next(iter(call.signature.parameters))
        k = len(hidden)
        stacked = call.signature.bind_partial()
        for name, value in call.arguments.items():
            stacked.arguments[name] = torch.cat(hidden) if name == first else _repeat_rows(value, k, rows)
        return block(*stacked.args, **stacked.kwargs)


def _repeat_rows(value: object, k: int, rows: int) -> object:
    """Repeat per-row tensors (first dim = rows, at least 2-D) k times along the batch; others as they are."""
    if k == 1:
        return value
    if isinstance(value, torch.Tensor):
        return (
            value.repeat(k, *[1] * (value.dim() - 1))
            if value.dim() >= 2 and value.shape[0] == rows
            else value
        )
    if isinstance(value, tuple | list):
        return type(value)(_repeat_rows(v, k, rows) for v in value)
    if isinstance(value, dict):
        return {key: _repeat_rows(v, k, rows) for key, v in value.items()}
    return value


def score_requests(
    engine: Engine,
    batches: Sequence[Batch],
    coalitions: Sequence[str],
    n_requests: int,
    on_batch: Callable[[], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Run every batch for a set of coalitions and merge the per-request results."""
    loglik = np.zeros((len(coalitions), n_requests))
    greedy = np.zeros((len(coalitions), n_requests), dtype=bool)
    for batch in batches:
        ll, gr = engine.run(batch, coalitions, n_requests)
        cols = batch.requests.numpy()
        loglik[:, cols], greedy[:, cols] = ll[:, cols], gr[:, cols]
        if on_batch is not None:
            on_batch()
    return loglik, greedy
