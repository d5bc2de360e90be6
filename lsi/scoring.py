"""Score coalitions of one (model, task, limit, granularity) with lm-eval's prompts and metrics.

lm-eval builds the requests (prompts, choices) and computes every metric; lsi only replaces the
model calls with its engine. Every scored coalition goes to the store before the next chunk starts,
and a coalition already in the store is never scored again. The forward passes run on a backend:
this process (`LocalBackend`) or Ray workers (`lsi.cluster.RayBackend`), both scoring the same units
of the same torch-only job (`lsi.jobs`); only this process writes the store.
"""

from __future__ import annotations

import functools
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
from lsi.jobs import ScoringJob, Unit, UnitResult, Worker, padded_tokens, plan_units
from lsi.lm_eval_adapter import encode_pairs
from lsi.models import LoadedModel
from lsi.players import Player, list_players
from lsi.provenance import TIE_TOLERANCE, now, store_meta
from lsi.store import FORMAT, ScoreStore, store_dir
from lsi.tasks import Document, TaskSet, load_task


def encode_requests(hflm: object, docs: Sequence[Document]) -> list[TokenRequest]:
    """lm-eval's own tokenisation of every request of the documents, in order."""
    pairs = [request for doc in docs for request in doc.requests]
    return [TokenRequest(tuple(ctx), tuple(cont)) for ctx, cont in encode_pairs(hflm, pairs)]


def near_tie(values: Sequence[float], tolerance: float = TIE_TOLERANCE) -> bool:
    """Whether the best two of a document's choice scores are closer than the tolerance."""
    top = sorted(values, reverse=True)[:2]
    return len(top) == 2 and top[0] - top[1] < tolerance


WAIT_S = 2.0  # how often a writer looks whether another has stored what it claimed
UNIT_S = 120.0  # a work unit's target length: what a stopped run may lose


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

    def add(self, result: UnitResult) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
        """(coalition, loglik, greedy, seconds) of the coalitions this result completes."""
        done = []
        share = result.seconds / len(result.unit.coalitions)
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
        self.requests = encode_requests(hflm, self.docs)
        offsets = np.cumsum([0] + [len(d.requests) for d in self.docs])
        self.doc_slices = [slice(a, b) for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
        self.max_length = hflm.max_length
        self.job = ScoringJob.from_requests(
            self.requests, self.max_length, batch_tokens, max_rows, share_contexts
        )
        self.batch_costs = padded_tokens(self.job.batches())
        self.chunk_size = chunk_size
        self._rate: float | None = None  # measured seconds per unit of planned cost
        self.backend = backend(self) if backend else LocalBackend(Worker(lm.model, self.players))
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
        """Score in units of at most about UNIT_S seconds each, so that a stopped run loses no more:
        a first round of two coalitions measures the seconds per unit of cost, if not known yet."""
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
                limit = UNIT_S / self._rate if self._rate else None
                units = plan_units(take, self.batch_costs, self.backend.workers, self.chunk_size, limit)
                assembly = _Assembly(units, len(self.requests))
                spent, cost = 0.0, 0.0
                for result in self.backend.run(self.job, units, bar.update):
                    spent, cost = spent + result.seconds, cost + result.unit.cost
                    done = assembly.add(result)
                    if done:
                        stored, loglik, greedy, seconds = zip(*done, strict=True)
                        self._append(stored, np.stack(loglik), np.stack(greedy), seconds, result.device)
                        claims.touch(self.store)
                self._rate = spent / cost if cost else self._rate

    def close(self) -> None:
        """Stop the backend's workers (a Ray backend's actors, and its local instance)."""
        self.backend.close()

    def store_scores(
        self, coalitions: Sequence[str], loglik: np.ndarray, greedy: np.ndarray, seconds: float, device: str
    ) -> int:
        """Store per-request log-likelihoods scored elsewhere (one row per coalition) as lm-eval's
        metrics, skipping coalitions already stored; returns how many were new."""
        stored = self.store.coalitions()
        new = [i for i, c in enumerate(coalitions) if c not in stored]
        self._append([coalitions[i] for i in new], loglik[new], greedy[new], [seconds] * len(new), device)
        return len(new)

    def _append(
        self,
        coalitions: Sequence[str],
        loglik: np.ndarray,
        greedy: np.ndarray,
        seconds: Sequence[float],
        device: str,
    ) -> None:
        rows = [
            self._row(c, loglik[i], greedy[i], seconds[i]) | {"device": device}
            for i, c in enumerate(coalitions)
        ]
        if rows:
            self.store.append(pd.DataFrame(rows))

    def _row(self, coalition: str, loglik: np.ndarray, greedy: np.ndarray, seconds: float) -> dict:
        per_doc, ties = [], 0
        for doc, sl in zip(self.docs, self.doc_slices, strict=True):
            per_doc.append(
                self.task.doc_metrics(doc, list(zip(loglik[sl].tolist(), greedy[sl].tolist(), strict=True)))
            )
            lengths = np.array([len(choice) for choice in doc.choices], dtype=float)
            ties += near_tie(loglik[sl]) or ("acc_norm" in per_doc[-1] and near_tie(loglik[sl] / lengths))
        metrics = self.task.aggregate(self.docs, per_doc)
        row = {
            "coalition": coalition,
            "n_kept": coalition.count("1"),
            "acc": metrics["acc"],
            "acc_norm": metrics["acc_norm"],
            "score": metrics["score"],
            "near_ties": ties,
            "nonfinite": int((~np.isfinite(loglik)).sum()),
            "loglik": loglik.astype(np.float32),
            "doc_acc": np.array([m["acc"] for m in per_doc], dtype=np.int8),
            "doc_acc_norm": np.array([m["acc_norm"] for m in per_doc], dtype=np.int8)
            if metrics["acc_norm"] is not None
            else None,
            "seconds": seconds,
            "scored_at": now(),
        }
        return row
