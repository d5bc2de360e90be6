"""How far two estimates of the same players agree, defined once for the benchmark, the report and
the figures: rank correlations, top-k precision and cornerstone recovery."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    return float(stats.spearmanr(a, b).statistic)


def kendall(a: Sequence[float], b: Sequence[float]) -> float:
    return float(stats.kendalltau(a, b).statistic)


def top_k(values: Sequence[float], k: int) -> set[int]:
    """The indices of the k largest values; ties broken by player order (a stable sort)."""
    return set(np.argsort(-np.asarray(values, dtype=float), kind="stable")[:k].tolist())


def top_k_precision(estimated: Sequence[float], reference: Sequence[float], k: int) -> float:
    """The share of the estimate's top k that belong to the reference's top k, where the reference's
    top k includes every player tied with its k-th value (a tie there is no error of the estimate)."""
    reference = np.asarray(reference, dtype=float)
    threshold = np.sort(reference)[::-1][k - 1]
    true_top = set(np.flatnonzero(reference >= threshold - 1e-12).tolist())
    return len(top_k(estimated, k) & true_top) / k


def cornerstones_recovered(estimated: Sequence[float], cornerstones: set[int]) -> bool | None:
    """Whether the estimate's top |C| players are exactly the cornerstone set C; None without any."""
    if not cornerstones:
        return None
    return top_k(estimated, len(cornerstones)) == set(cornerstones)


def agreement(estimated: Sequence[float], truth: Sequence[float], cornerstones: set[int]) -> dict:
    """Every measure of an estimate against the truth (or a reference), as one benchmark row."""
    estimated, truth = np.asarray(estimated, dtype=float), np.asarray(truth, dtype=float)
    return {
        "mse": float(np.mean((estimated - truth) ** 2)),
        "spearman": spearman(estimated, truth),
        "kendall": kendall(estimated, truth),
        "top3_precision": top_k_precision(estimated, truth, 3),
        "top5_precision": top_k_precision(estimated, truth, 5),
        "cornerstones_recovered": cornerstones_recovered(estimated, cornerstones),
    }
