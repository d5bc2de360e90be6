"""Score coalitions of one (model, task, limit, granularity) with lm-eval's prompts and metrics.

lm-eval builds the requests (prompts, choices) and computes every metric; lsi only replaces the
model calls with its engine. Every scored coalition goes to the store before the next chunk starts,
and a coalition already in the store is never scored again. The forward passes run on a backend:
this process (`LocalBackend`) or Ray workers (`lsi.cluster.RayBackend`), both scoring the same units
of the same torch-only job (`lsi.jobs`); only this process writes the store.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lsi import claims
from lsi.engine import TokenRequest
from lsi.errors import UserError
from lsi.generation import Generated, GenerationRequest
from lsi.jobs import ScoringJob, Unit, UnitResult, Worker, decoder, padded_tokens, plan_units
from lsi.lm_eval_adapter import encode_pairs, generated_text, generation_request, rolling_windows
from lsi.models import LoadedModel
from lsi.players import Player, list_players
from lsi.provenance import TIE_TOLERANCE, now, store_meta
from lsi.store import FORMAT, ScoreStore, store_dir
from lsi.tasks import Document, TaskSet, load_task
from lsi.values import GOLD_LOGLIK, is_perplexity


def encode_requests(
    hflm: object, docs: Sequence[Document], task: TaskSet
) -> tuple[list[TokenRequest], np.ndarray]:
    """lm-eval's own tokenisation of every log-likelihood request of the documents, in order, and for
    each token request the lm-eval request it belongs to (a rolling log-likelihood is a sum over
    windows). A generative task's are each document's first gold answer after its prompt."""
    if task.output_type == "generate_until":
        requests = [task.gold_request(doc) for doc in docs]
    else:
        requests = [request for doc in docs for request in doc.requests]
    if task.output_type == "loglikelihood_rolling":
        windows = [rolling_windows(hflm, text) for (text,) in requests]
        owner = np.repeat(np.arange(len(windows)), [len(w) for w in windows])
        pairs = [pair for w in windows for pair in w]
    else:
        pairs, owner = encode_pairs(hflm, requests), np.arange(len(requests))
    return [TokenRequest(tuple(ctx), tuple(cont)) for ctx, cont in pairs], owner


def near_tie(values: Sequence[float], tolerance: float = TIE_TOLERANCE) -> bool:
    """Whether the best two of a document's choice scores are closer than the tolerance."""
    top = sorted(values, reverse=True)[:2]
    return len(top) == 2 and top[0] - top[1] < tolerance


WAIT_S = 2.0  # how often a writer looks whether another has stored what it claimed
UNIT_S = 120.0  # a work unit's target length: what a stopped run may lose...
# ... unless a coalition takes longer than UNIT_S / UNIT_COALITIONS (a 1.5B model on a CPU): a unit then
# holds this many coalitions' work, so that they still share their prefixes in the engine's tree.
UNIT_COALITIONS = 4
# Coalitions of a generative unit, decoded together (`lsi.routing`) so that their long tails share
# steps; fewer where UNIT_S asks for it.
GENERATION_CHUNK = 8


def unit_cost_cap(coalitions: Sequence[str], batch_costs: Sequence[int], rate: float) -> float:
    """The most planned cost (`plan_units`' units) one unit may hold at `rate` seconds per unit of cost:
    UNIT_S of work, or UNIT_COALITIONS of the coalitions' cost alone (kept players and the head over
    every batch) if that is more. One coalition per unit shares no prefix: a single-player ablation took
    1.8 times longer so (`benchmarks/bench_units.py`)."""
    alone = (max(c.count("1") for c in coalitions) + 1) * sum(batch_costs)
    return max(UNIT_S / rate, UNIT_COALITIONS * alone)


class Backend(Protocol):
    """Where forward passes run: scores units and yields their results as they finish."""

    workers: int
    device: str

    def run(
        self, job: ScoringJob, units: Sequence[Unit], advance: Callable[[int], None]
    ) -> Iterator[UnitResult]: ...

    def close(self) -> None: ...


class LocalBackend:
    """The model in this process: units one after another, the bar moving per batch."""

    workers = 1

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.device = str(worker.engine.device)

    def run(
        self, job: ScoringJob, units: Sequence[Unit], advance: Callable[[int], None]
    ) -> Iterator[UnitResult]:
        for unit in units:
            yield self.worker.score(job, unit, functools.partial(advance, len(unit.coalitions)))

    def close(self) -> None:
        """Nothing to stop: the model belongs to the caller."""


class _Assembly:
    """Per-coalition results from units that may each hold a part of its batches."""

    def __init__(self, units: Sequence[Unit], n_requests: int) -> None:
        self.n_requests = n_requests
        self.parts: dict[str, int] = {}
        for unit in units:
            for c in unit.coalitions:
                self.parts[c] = self.parts.get(c, 0) + 1
        self.loglik: dict[str, np.ndarray] = {}
        self.greedy: dict[str, np.ndarray] = {}
        self.seconds: dict[str, float] = {}
        self.generated: dict[str, tuple[Generated, ...]] = {}

    def add(self, result: UnitResult) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
        """(coalition, loglik, greedy, seconds) of the coalitions this result completes; a generative
        job's continuations wait in `generated`."""
        done = []
        share = result.seconds / len(result.unit.coalitions)
        if result.generated:
            self.generated.update(zip(result.unit.coalitions, result.generated, strict=True))
        for i, c in enumerate(result.unit.coalitions):
            self.loglik.setdefault(c, np.zeros(self.n_requests))[result.requests] = result.loglik[i]
            self.greedy.setdefault(c, np.zeros(self.n_requests, dtype=bool))[result.requests] = result.greedy[
                i
            ]
            self.seconds[c] = self.seconds.get(c, 0.0) + share
            self.parts[c] -= 1
            if self.parts[c] == 0:
                done.append((c, self.loglik.pop(c), self.greedy.pop(c), self.seconds.pop(c)))
        return done


class Scorer:
    """Scores coalitions (bit strings of kept players) through the store."""

    def __init__(
        self,
        lm: LoadedModel,
        task: str | TaskSet,
        limit: int | None,
        granularity: str,
        results: Path = Path("results"),
        batch_tokens: int = 4096,
        max_rows: int = 64,
        chunk_size: int = 32,
        share_contexts: bool = True,
        backend: Callable[[Scorer], Backend] | None = None,
    ) -> None:
        """`backend`: builds the backend once players and requests are known (default: this process)."""
        if limit is not None and limit <= 0:
            raise UserError(f"limit must be a positive number of documents, got {limit}; omit it to use all")
        self.lm = lm
        self.task = load_task(task) if isinstance(task, str) else task
        self.limit = limit
        self.players: tuple[Player, ...] = list_players(lm.model, granularity)
        self.granularity = granularity
        self.docs = self.task.documents(limit)
        hflm = lm.hflm()
        self.requests, self.owner = encode_requests(hflm, self.docs, self.task)
        self.hflm = hflm
        self.generation = (
            [
                GenerationRequest(tuple(ids), tuple(until), budget)
                for doc in self.docs
                for ids, until, budget in [generation_request(hflm, *doc.requests[0])]
            ]
            if self.task.output_type == "generate_until"
            else []
        )
        offsets = np.cumsum([0] + [len(d.requests) for d in self.docs])
        self.doc_slices = [slice(a, b) for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
        self.max_length = hflm.max_length
        self.job = ScoringJob.from_requests(
            self.requests, self.max_length, batch_tokens, max_rows, share_contexts, self.generation
        )
        self.batch_costs = padded_tokens(self.job.batches())
        self.chunk_size = chunk_size
        self._rate: float | None = None  # measured seconds per unit of planned cost
        self.backend = (
            backend(self) if backend else LocalBackend(Worker(lm.model, self.players, decoder(lm.tokenizer)))
        )
        path = store_dir(results, lm.identity.name, self.task.name, granularity, lm.dtype, limit)
        self.store = ScoreStore.open(path, self.meta())

    def meta(self) -> dict:
        """Everything a result file must say about how it was made (on a GPU, whether torch's
        deterministic kernels were on: without them two runs may differ in the last bits)."""
        import torch

        deterministic = {"deterministic_kernels": torch.are_deterministic_algorithms_enabled()}
        return (
            store_meta(
                self.lm,
                self.task,
                self.docs,
                self.limit,
                self.granularity,
                self.players,
                self.backend.device,
                self.max_length,
                FORMAT,
            )
            | deterministic
        )

    def scores(self, coalitions: Iterable[str], progress: bool = True) -> pd.DataFrame:
        """Rows of the requested coalitions, scoring (and storing) those not stored yet."""
        wanted = list(dict.fromkeys(coalitions))
        for c in wanted:
            if len(c) != len(self.players) or set(c) - {"0", "1"}:
                raise UserError(f"coalition '{c}' is not a bit string of length {len(self.players)}")
        waiting = False
        while missing := [c for c in wanted if c not in self.store.coalitions()]:
            mine = claims.claim(self.store, missing)
            if not mine:  # another writer claimed them: wait until it has stored them (or is gone)
                if progress and not waiting:
                    note = f"waiting for another writer of {self.store.path} ({len(missing)} coalitions)"
                    tqdm.write(note, file=sys.stderr)
                waiting = True
                time.sleep(WAIT_S)
                continue
            try:
                self._score(mine, progress)
            finally:
                claims.release(self.store)
        return self.store.frame().set_index("coalition").loc[wanted].reset_index()

    def _score(self, coalitions: list[str], progress: bool) -> None:
        """Score in units of at most about UNIT_S seconds each (`unit_cost_cap`), so that a stopped run
        loses no more: a first round of two coalitions measures the seconds per unit of cost, if not
        known yet."""
        todo = sorted(coalitions, reverse=True)
        bar = tqdm(
            total=len(todo) * len(self.batch_costs),
            desc=f"{self.task.name} {len(todo)} coalitions",
            unit="coalition-batch",
            disable=not progress,
        )
        with bar:
            while todo:
                take, todo = (todo, []) if self._rate else (todo[:2], todo[2:])
                limit = unit_cost_cap(take, self.batch_costs, self._rate) if self._rate else None
                units = (
                    plan_units(take, self.batch_costs, 1, GENERATION_CHUNK, limit)  # all batches
                    if self.generation
                    else plan_units(take, self.batch_costs, self.backend.workers, self.chunk_size, limit)
                )
                assembly = _Assembly(units, len(self.requests))
                spent, cost = 0.0, 0.0
                for result in self.backend.run(self.job, units, bar.update):
                    spent, cost = spent + result.seconds, cost + result.unit.cost
                    done = assembly.add(result)
                    if done:
                        stored, loglik, greedy, seconds = zip(*done, strict=True)
                        generated = [assembly.generated.pop(c) for c in stored] if self.generation else None
                        self._append(
                            stored, np.stack(loglik), np.stack(greedy), seconds, result.device, generated
                        )
                        claims.touch(self.store)
                self._rate = spent / cost if cost else self._rate

    def close(self) -> None:
        """Stop the backend's workers (a Ray backend's actors, and its local instance)."""
        self.backend.close()

    def store_scores(
        self,
        coalitions: Sequence[str],
        loglik: np.ndarray,
        greedy: np.ndarray,
        seconds: float,
        device: str,
        generated: Sequence[Sequence[Generated]] | None = None,
    ) -> int:
        """Store per-request log-likelihoods (and a generative task's continuations) scored elsewhere,
        one row per coalition, as lm-eval's metrics, skipping coalitions already stored; returns how
        many were new."""
        if self.generation and generated is None:
            raise UserError(
                f"{self.task.name} is a generate_until task and these scores hold no generated tokens: "
                "export the job again with this version of lsi"
            )
        stored = self.store.coalitions()
        new = [i for i, c in enumerate(coalitions) if c not in stored]
        self._append(
            [coalitions[i] for i in new],
            loglik[new],
            greedy[new],
            [seconds] * len(new),
            device,
            [generated[i] for i in new] if generated is not None else None,
        )
        return len(new)

    def _append(
        self,
        coalitions: Sequence[str],
        loglik: np.ndarray,
        greedy: np.ndarray,
        seconds: Sequence[float],
        device: str,
        generated: Sequence[Sequence[Generated]] | None = None,
    ) -> None:
        rows = [
            self._row(c, loglik[i], greedy[i], seconds[i], generated[i] if generated else ())
            | {"device": device}
            for i, c in enumerate(coalitions)
        ]
        if rows:
            self.store.append(pd.DataFrame(rows))

    def _row(
        self,
        coalition: str,
        token_loglik: np.ndarray,
        token_greedy: np.ndarray,
        seconds: float,
        generated: Sequence[Generated] = (),
    ) -> dict:
        """One coalition's store row from its per-token-request results: lm-eval's metrics over the
        documents, per-request log-likelihoods (a rolling request's: the sum over its windows; a
        generative document's: its first gold answer's), and a generative task's texts."""
        n = self.doc_slices[-1].stop if not self.generation else len(self.docs)
        loglik = np.bincount(self.owner, weights=token_loglik, minlength=n)
        greedy = np.bincount(self.owner, weights=~token_greedy, minlength=n) == 0
        started = time.perf_counter()
        texts, generation_ties = self.texts(generated)
        responses: list[list] = []
        for i, sl in enumerate(self.doc_slices):
            if self.generation:
                responses.append([texts[i]])
            elif self.task.output_type == "loglikelihood_rolling":
                responses.append(loglik[sl].tolist())
            else:
                responses.append(list(zip(loglik[sl].tolist(), greedy[sl].tolist(), strict=True)))
        per_doc = self.task.per_document(self.docs, responses)
        ties = generation_ties
        for doc, sl, metrics in zip(self.docs, self.doc_slices, per_doc, strict=True):
            if self.task.has_choices:
                lengths = np.array([len(choice) for choice in doc.choices], dtype=float)
                ties += near_tie(loglik[sl]) or ("acc_norm" in metrics and near_tie(loglik[sl] / lengths))
        metrics = self.task.aggregate(self.docs, per_doc)
        if self.generation:  # the continuous value beside lm-eval's metrics
            for m, value in zip(per_doc, loglik.tolist(), strict=True):
                m[GOLD_LOGLIK] = value
            metrics[GOLD_LOGLIK] = float(loglik.mean())
        row = {
            "coalition": coalition,
            "n_kept": coalition.count("1"),
            "acc": metrics.get("acc"),
            "acc_norm": metrics.get("acc_norm"),
            "score": metrics["score"],
            "near_ties": ties,
            "nonfinite": int((~np.isfinite(token_loglik)).sum()),
            "loglik": loglik.astype(np.float32),
            "metrics": json.dumps({k: v for k, v in metrics.items() if k != "score"}),
        }
        if self.task.has_choices:
            row["doc_acc"] = np.array([m["acc"] for m in per_doc], dtype=np.int8)
            row["doc_acc_norm"] = (
                np.array([m["acc_norm"] for m in per_doc], dtype=np.int8)
                if metrics["acc_norm"] is not None
                else None
            )
        else:
            row["doc_metrics"] = json.dumps(_scalar_columns(per_doc))
        if self.generation:
            row["generations"] = texts
        seconds += time.perf_counter() - started
        return row | {"seconds": seconds, "scored_at": now()}

    def texts(self, generated: Sequence[Generated]) -> tuple[list[str], int]:
        """The texts lm-eval keeps of each document's continuation (cut at its stop strings), and how
        many documents had a near tie (top two logits within TIE_TOLERANCE) at some step."""
        texts = [
            generated_text(self.hflm, g.tokens, r.until)
            for g, r in zip(generated, self.generation, strict=True)
        ]
        return texts, sum(g.min_gap < TIE_TOLERANCE for g in generated)


def _scalar_columns(per_doc: Sequence[dict]) -> dict[str, list[float]]:
    """The per-document metrics that are numbers, as one list per metric. Perplexities are left out:
    `lsi.values` derives them from the `loglik` column (and the documents' word and byte counts in the
    store's meta), and a second copy as text would double a store."""
    keys = [
        k
        for k, v in (per_doc[0].items() if per_doc else ())
        if isinstance(v, int | float | bool | np.number) and not is_perplexity(k)
    ]
    return {k: [float(m[k]) for m in per_doc] for k in keys}
