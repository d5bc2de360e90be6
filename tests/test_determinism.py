"""Two CPU runs of the same coalitions, in one call each with the same threads, give identical numbers:
log-likelihoods, metrics and per-document columns (timestamps and timings aside)."""

from __future__ import annotations

import numpy as np
import torch

from lsi.players import single_removals
from lsi.scoring import Scorer

TIMING = {"seconds", "scored_at"}


def test_two_runs_give_identical_scores(smollm, tmp_path) -> None:
    coalitions = ["1" * 30, *single_removals(30)[:5], "10" * 15]
    runs = []
    for name in ("first", "second"):
        scorer = Scorer(smollm, "piqa", 6, "block", tmp_path / name)
        runs.append(scorer.scores(coalitions, progress=False).set_index("coalition"))
    first, second = runs
    assert set(first.columns) == set(second.columns) and set(first.columns) > TIMING
    for column in sorted(set(first.columns) - TIMING):
        for c in coalitions:
            a, b = first.at[c, column], second.at[c, column]
            if isinstance(a, np.ndarray):
                assert a.dtype == b.dtype and np.array_equal(a, b), (column, c)
            else:
                assert a == b or (a is None and b is None), (column, c)
    assert scorer.store.meta["deterministic_kernels"] == torch.are_deterministic_algorithms_enabled()
