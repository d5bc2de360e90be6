"""The torch-only scoring job, and the worker that scores it.

A `ScoringJob` is a task slice as token arrays (lm-eval already encoded it) with its batching, and
for a generative task its generation requests; a `Unit` is a slice of work on it (some coalitions,
over all its batches or some of them). A `Worker` holds one model (and, for generation, its
tokenizer's decoder for the stop strings) and turns units into per-request log-likelihoods and, for
a generative job, each coalition's greedy continuations. Local scoring, every Ray worker and
`python -m lsi.remote` run this same code; only where the model comes from differs (`build_worker`).
This module imports nothing of lm-eval, datasets or Ray.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lsi.engine import Batch, Engine, TokenRequest, make_batches, score_requests
from lsi.errors import UserError
from lsi.generation import Generated, GenerationRequest, generate, generate_coalitions
from lsi.hardware import bfloat16_matmuls, device_label
from lsi.masking import skip
from lsi.players import Player, list_players, removed_players

REQUESTS = "requests.npz"
# Rows of one decoding batch when several coalitions generate together: room for the same documents
# under many coalitions, whose rows that run to their token budget then share steps.
GENERATION_ROWS = 256


@dataclass(frozen=True)
class ScoringJob:
    """A task slice's requests as token arrays, and how they are batched."""

    tokens: np.ndarray  # every request's context + continuation, concatenated
    lengths: np.ndarray  # tokens per request
    context_lengths: np.ndarray
    max_length: int
    batch_tokens: int = 4096
    max_rows: int = 64
    share_contexts: bool = True
    generation: tuple[GenerationRequest, ...] = ()  # a generate_until task's, one per document

    @classmethod
    def from_requests(
        cls,
        requests: Sequence[TokenRequest],
        max_length: int,
        batch_tokens: int = 4096,
        max_rows: int = 64,
        share_contexts: bool = True,
        generation: Sequence[GenerationRequest] = (),
    ) -> ScoringJob:
        tokens = [np.asarray(r.context + r.continuation, dtype=np.int64) for r in requests]
        return cls(
            np.concatenate(tokens) if tokens else np.zeros(0, dtype=np.int64),
            np.array([len(t) for t in tokens], dtype=np.int64),
            np.array([len(r.context) for r in requests], dtype=np.int64),
            max_length,
            batch_tokens,
            max_rows,
            share_contexts,
            tuple(generation),
        )

    @property
    def n_requests(self) -> int:
        return len(self.lengths)

    def requests(self) -> list[TokenRequest]:
        ends = np.cumsum(self.lengths)
        return [
            TokenRequest(tuple(t[:c].tolist()), tuple(t[c:].tolist()))
            for t, c in zip(np.split(self.tokens, ends[:-1]), self.context_lengths, strict=True)
        ]

    @functools.cached_property
    def key(self) -> str:
        """Equal for equal requests and batching: a worker keeps one job's batches across its units."""
        digest = hashlib.sha256()
        for array in (self.tokens, self.lengths, self.context_lengths):
            digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(repr((self.max_length, self.batch_tokens, self.max_rows, self.share_contexts)).encode())
        digest.update(repr(self.generation).encode())
        return digest.hexdigest()

    def batches(self) -> list[Batch]:
        return make_batches(
            self.requests(), self.max_length, self.batch_tokens, self.max_rows, self.share_contexts
        )

    def save(self, folder: Path) -> dict:
        """Write the token arrays to `folder`; returns the settings a job file records beside them."""
        prompts = [np.asarray(r.context, dtype=np.int64) for r in self.generation]
        np.savez_compressed(
            Path(folder) / REQUESTS,
            tokens=self.tokens,
            lengths=self.lengths,
            context_lengths=self.context_lengths,
            prompts=np.concatenate(prompts) if prompts else np.zeros(0, dtype=np.int64),
            prompt_lengths=np.array([len(p) for p in prompts], dtype=np.int64),
            max_gen_toks=np.array([r.max_gen_toks for r in self.generation], dtype=np.int64),
            until=np.array(json.dumps([r.until for r in self.generation])),
        )
        return {"max_length": self.max_length, "batch_tokens": self.batch_tokens, "max_rows": self.max_rows}

    @classmethod
    def load(cls, folder: Path, max_length: int, batch_tokens: int, max_rows: int) -> ScoringJob:
        data = np.load(Path(folder) / REQUESTS)
        generation = ()
        if "prompts" in data and len(data["prompt_lengths"]):  # older jobs hold no generation requests
            prompts = np.split(data["prompts"], np.cumsum(data["prompt_lengths"])[:-1])
            until = json.loads(str(data["until"]))
            generation = tuple(
                GenerationRequest(tuple(p.tolist()), tuple(u), int(b))
                for p, u, b in zip(prompts, until, data["max_gen_toks"], strict=True)
            )
        return cls(
            data["tokens"],
            data["lengths"],
            data["context_lengths"],
            max_length,
            batch_tokens,
            max_rows,
            generation=generation,
        )


@dataclass(frozen=True)
class Unit:
    """Some coalitions over some of a job's batches: what one worker call scores."""

    coalitions: tuple[str, ...]
    batches: tuple[int, ...]
    cost: float = 0.0  # estimated: kept players x tokens, for balancing

    @property
    def size(self) -> int:
        """Coalition-batches: the progress bar's unit."""
        return len(self.coalitions) * len(self.batches)


@dataclass(frozen=True)
class UnitResult:
    """A unit's log-likelihoods and greedy flags for the requests its batches hold, and for a
    generative job each coalition's continuations of every document."""

    unit: Unit
    requests: np.ndarray  # request indices, the columns of loglik and greedy
    loglik: np.ndarray  # [coalition, request]
    greedy: np.ndarray
    seconds: float  # scoring time in the worker, without transfers
    device: str
    generated: tuple[tuple[Generated, ...], ...] = ()  # [coalition][document]


class Worker:
    """One model that scores units of jobs; the batches of the last job are kept between units.

    `decode` (token ids -> text, special tokens skipped, as lm-eval decodes) finds the stop strings
    of generation; a worker without it refuses generative jobs."""

    def __init__(
        self,
        model: nn.Module,
        players: tuple[Player, ...],
        decode: Callable[[list[int]], str] | None = None,
    ) -> None:
        self.engine = Engine(model, players)
        self.players = players
        self.decode = decode
        self._job_key: str | None = None
        self._batches: list[Batch] = []

    @property
    def device(self) -> str:
        return device_label(self.engine.device, next(self.engine.model.parameters()).dtype)

    def batches(self, job: ScoringJob) -> list[Batch]:
        if job.key != self._job_key:
            self._batches, self._job_key = job.batches(), job.key
        return self._batches

    def score(self, job: ScoringJob, unit: Unit, on_batch: Callable[[], None] | None = None) -> UnitResult:
        batches = self.batches(job)
        chosen = [batches[i] for i in unit.batches]
        start = time.perf_counter()
        with torch.inference_mode(), bfloat16_matmuls(self.engine.device):
            loglik, greedy = score_requests(self.engine, chosen, unit.coalitions, job.n_requests, on_batch)
        generated = ()
        if job.generation:
            if len(chosen) != len(batches):
                raise ValueError("a generative job's unit must hold all its batches: it generates once")
            generated = self.generate(job, unit.coalitions)
        seconds = time.perf_counter() - start
        columns = np.sort(np.concatenate([b.requests.numpy() for b in chosen]))
        return UnitResult(
            unit, columns, loglik[:, columns], greedy[:, columns], seconds, self.device, generated
        )

    def generate(self, job: ScoringJob, coalitions: Sequence[str]) -> tuple[tuple[Generated, ...], ...]:
        """Each coalition's greedy continuations of the job's generation requests (lm-eval's
        generate_until, decoded here): one coalition under `skip`, several in shared batches."""
        if self.decode is None:
            raise UserError("this worker has no tokenizer, which generation needs for its stop strings")
        model, removed = self.engine.model, [removed_players(c, self.players) for c in coalitions]
        with bfloat16_matmuls(self.engine.device):
            if len(removed) == 1:
                with skip(model, removed[0]):
                    return (tuple(generate(model, job.generation, self.decode)),)
            together = generate_coalitions(model, job.generation, removed, self.decode, GENERATION_ROWS)
        return tuple(map(tuple, together))


@dataclass(frozen=True)
class ModelSource:
    """Where a worker gets its model: a spec that `lsi.models` resolves (the embedded name, a path on
    a shared file system, a hub id), checked against the weights hash the driver computed."""

    spec: str
    dtype: str
    granularity: str
    players: tuple[str, ...]
    weights_sha256: str
    trust_remote_code: bool = False


def build_worker(
    source: ModelSource, device: str = "cpu", device_map: str | dict | None = None, threads: int | None = None
) -> Worker:
    """Load the source's model (split by `device_map` if given) and check it is the driver's."""
    from lsi.models import load_model

    if threads:
        torch.set_num_threads(threads)
    lm = load_model(source.spec, source.dtype, device, device_map, source.trust_remote_code)
    if lm.identity.weights_sha256 != source.weights_sha256:
        raise UserError(
            f"the worker's {source.spec} has other weights than the driver's (sha256 "
            f"{lm.identity.weights_sha256[:12]} vs {source.weights_sha256[:12]}): give every node the same "
            "files"
        )
    return checked_worker(lm.model, source.granularity, source.players, decoder(lm.tokenizer))


def decoder(tokenizer: object) -> Callable[[list[int]], str]:
    """Token ids -> text as lm-eval's HFLM decodes generations (special tokens skipped)."""
    return functools.partial(tokenizer.decode, skip_special_tokens=True)


def checked_worker(
    model: nn.Module,
    granularity: str,
    players: Sequence[str],
    decode: Callable[[list[int]], str] | None = None,
) -> Worker:
    """A worker around a model whose players must be the job's."""
    listed = list_players(model, granularity)
    if [p.name for p in listed] != list(players):
        raise UserError("the worker's model has other players than the job's: not the same architecture")
    return Worker(model, listed, decode)


def place_blocks(model: nn.Module, devices: Sequence[str]) -> None:
    """Move the model's blocks to `devices` in equal consecutive runs; what comes before the blocks
    stays on the first device, the final norm and head go to the last. The engine moves the residual
    between devices (no accelerate hooks needed: a torch-only machine can split a model too)."""
    from lsi.architectures import architecture, get_path

    arch = architecture(model)
    blocks = get_path(model, arch.layers)
    model.to(devices[0])
    for i, block in enumerate(blocks):
        block.to(devices[i * len(devices) // len(blocks)])
    for path in arch.tail:
        module = get_path(model, path)
        if module is not None:
            module.to(devices[-1])


def plan_units(
    coalitions: Sequence[str],
    batch_tokens: Sequence[int],
    workers: int,
    chunk_size: int = 32,
    max_cost: float | None = None,
) -> list[Unit]:
    """Cut the work into units, costliest first: coalitions (sorted, so that shared prefixes are
    adjacent) in chunks, each over a group of batches.

    One worker gets chunks of `chunk_size` over all batches. Several workers get at least four units
    each where the work allows (the schedule's tail stays short), split over batches first: documents
    are independent, so a batch group loses none of the prefix tree's sharing, while a smaller chunk
    of coalitions shares fewer prefixes. `max_cost` caps a unit's cost where a single coalition
    allows (what is not yet stored when a run stops is at most one unit per worker).
    """
    coalitions = sorted(dict.fromkeys(coalitions), reverse=True)
    if not coalitions:
        return []
    wanted = 1 if workers == 1 else 4 * workers
    parts = _balanced_groups(batch_tokens, min(len(batch_tokens), wanted))
    n_chunks = min(len(coalitions), max(-(-len(coalitions) // chunk_size), -(-wanted // len(parts))))
    bounds = [len(coalitions) * k // n_chunks for k in range(n_chunks + 1)]
    units = _units([coalitions[a:b] for a, b in itertools.pairwise(bounds)], parts, batch_tokens)
    if max_cost is None or units[0].cost <= max_cost:
        return units
    # The cap binds: chunks filled up to it, so that coalitions with long shared prefixes (cheap to add)
    # share more than in equal counts; at most len // n_chunks each, so there are at least n_chunks.
    heaviest = max(sum(batch_tokens[i] for i in part) for part in parts)
    size = min(chunk_size, len(coalitions) // n_chunks)
    return _units(_capped_chunks(coalitions, size, max_cost, heaviest), parts, batch_tokens)


def _capped_chunks(coalitions: list[str], size: int, max_cost: float, tokens: int) -> list[list[str]]:
    """Sorted coalitions in consecutive chunks of at most `size`, each filled while its player runs and
    heads over `tokens` cost at most `max_cost` (a single coalition may cost more). In sorted order a
    coalition shares its longest prefix with the one before it: it adds its kept players after that."""
    chunks: list[list[str]] = []
    runs = 0
    for before, coalition in itertools.pairwise(["", *coalitions]):
        added = coalition[len(os.path.commonprefix([before, coalition])) :].count("1") + 1
        if chunks and len(chunks[-1]) < size and (runs + added) * tokens <= max_cost:
            chunks[-1].append(coalition)
            runs += added
        else:
            chunks.append([coalition])
            runs = coalition.count("1") + 1
    return chunks


def _units(chunks: list[list[str]], parts: list[tuple[int, ...]], batch_tokens: Sequence[int]) -> list[Unit]:
    """Each chunk of coalitions over every batch group, costliest first."""
    units = []
    for members in chunks:
        chunk = tuple(members)
        runs = executed_players(chunk) + len(chunk)  # + the head, once per coalition
        for part in parts:
            units.append(Unit(chunk, part, float(runs * sum(batch_tokens[i] for i in part))))
    return sorted(units, key=lambda u: -u.cost)


def executed_players(coalitions: Sequence[str]) -> int:
    """Player runs the engine's prefix tree executes for these coalitions: a kept player runs once per
    distinct prefix ending with it, so coalitions that agree up to it share its run."""
    return sum(len({c[: i + 1] for c in coalitions if c[i] == "1"}) for i in range(len(coalitions[0])))


def _balanced_groups(costs: Sequence[int], groups: int) -> list[tuple[int, ...]]:
    """Batch indices in `groups` groups of near-equal total cost (largest first onto the lightest)."""
    members: list[list[int]] = [[] for _ in range(groups)]
    totals = [0] * groups
    for i in sorted(range(len(costs)), key=lambda i: -costs[i]):
        lightest = totals.index(min(totals))
        members[lightest].append(i)
        totals[lightest] += costs[i]
    return [tuple(sorted(m)) for m in members if m]


def padded_tokens(batches: Sequence[Batch]) -> list[int]:
    """Padded tokens per batch: the cost model's measure of a batch."""
    return [int(b.input_ids.numel()) for b in batches]
