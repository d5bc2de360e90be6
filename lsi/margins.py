"""The gold log-likelihood margin per document: the continuous value of the layer game.

Its own module (numpy only) because two sides need it: the layer game reads it, and the score store
keeps it in place of the per-request log-likelihoods when a finished store is slimmed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def margins(meta: dict, loglik: Sequence[float] | np.ndarray) -> np.ndarray:
    """Per document, the gold choice's log-likelihood minus the best other choice's.

    Divided by the choice's character length where the task's metric is acc_norm, as lm-eval does;
    positive exactly when the document is answered right.
    """
    normalise = meta["metric"] == "acc_norm"
    out = np.empty(len(meta["documents"]))
    at = 0
    for i, doc in enumerate(meta["documents"]):
        lls = np.asarray(loglik[at : at + doc["n_choices"]], dtype=float)
        at += doc["n_choices"]
        if normalise:
            lls = lls / np.asarray(doc["choice_chars"], dtype=float)
        gold = np.zeros(len(lls), dtype=bool)
        gold[np.atleast_1d(doc["gold"])] = True
        out[i] = lls[gold].max() - lls[~gold].max()
    return out


def row_margins(meta: dict, row: Mapping) -> np.ndarray:
    """A stored coalition's margins: its `doc_margin` where the store was slimmed, else computed from
    its log-likelihoods (a slimmed store's later rows still carry them, and a row read from a store
    mixing both kinds has NaN or None for the one it lacks)."""
    stored = row.get("doc_margin")
    if stored is not None and np.ndim(stored) == 1:
        return np.asarray(stored, dtype=float)
    return margins(meta, row["loglik"])
