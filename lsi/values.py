"""A coalition's value per document, for any lm-eval metric, from a store row alone (no model).

Multiple-choice stores keep `doc_acc` / `doc_acc_norm`; other tasks keep their per-document metrics
as `doc_metrics`. Lower-is-better perplexities enter the game negated in log space, as a
log-likelihood per unit, and split over documents so that their mean is the task's value:
-log word_perplexity = sum(loglik) / sum(words) = mean(loglik_d / mean(words)).
"""

from __future__ import annotations

import json
import math

import numpy as np

from lsi.errors import UserError

PERPLEXITIES = {
    "perplexity": "mean log-likelihood per document (-log perplexity)",
    "word_perplexity": "log-likelihood per word (-log word_perplexity)",
    "byte_perplexity": "log-likelihood per byte (-log byte_perplexity)",
    "bits_per_byte": "log2-likelihood per byte (-bits_per_byte)",
}


def game_value(metric: str, value: float | None) -> float | None:
    """A task-level metric as the game's value: perplexities negated in log space (higher is better)."""
    name = metric.split(",")[0]
    if value is None or name not in PERPLEXITIES:
        return value
    return -value if name == "bits_per_byte" else -math.log(value)


GOLD_LOGLIK = "gold_loglik"  # generative tasks' continuous value: log p(first gold answer | prompt)


def is_perplexity(metric: str) -> bool:
    return metric.split(",")[0] in PERPLEXITIES


def chance_level(meta: dict, metric: str | None = None) -> float | None:
    """The floor of a value: guessing (1 / number of choices, or the majority-class rate where that
    is higher) for a task with choices, 0 for exact match and other bounded metrics of tasks
    without choices; none for a log-likelihood or perplexity value (no floor is known without
    scoring the empty model)."""
    metric = metric or meta["metric"]
    if is_perplexity(metric) or metric == GOLD_LOGLIK:
        return None
    return max(meta["chance"], meta["majority_rate"])


def metrics_of(meta: dict, row: dict) -> list[str]:
    """The metrics a store row can give as a value (`--metric`)."""
    names = [c.removeprefix("doc_") for c in ("doc_acc", "doc_acc_norm") if row.get(c) is not None]
    names += list(json.loads(row["doc_metrics"])) if row.get("doc_metrics") else []
    reported = json.loads(row["metrics"]) if row.get("metrics") else {}
    return names + [m for m in reported if is_perplexity(m) and m not in names]


def document_values(meta: dict, row: dict, metric: str | None = None) -> np.ndarray:
    """Per-document values whose mean is the coalition's value under `metric` (default: the store's)."""
    metric = metric or meta["metric"]
    column = row.get(f"doc_{metric}")
    if column is not None:
        return np.asarray(column, dtype=float)
    name = metric.split(",")[0]
    if name in PERPLEXITIES:
        loglik = np.asarray(row["loglik"], dtype=float)
        count = {"word_perplexity": "words", "byte_perplexity": "bytes", "bits_per_byte": "bytes"}.get(name)
        scale = np.mean([d[count] for d in meta["documents"]]) if count else 1.0
        scale *= math.log(2) if name == "bits_per_byte" else 1.0
        return loglik / scale
    per_doc = json.loads(row["doc_metrics"]) if row.get("doc_metrics") else {}
    if metric not in per_doc:
        raise UserError(
            f"unknown --metric {metric!r} for this store; its metrics: {', '.join(metrics_of(meta, row))}"
        )
    return np.asarray(per_doc[metric], dtype=float)
