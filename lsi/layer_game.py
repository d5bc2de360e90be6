"""The layer game of one (model, task, limit, granularity): a coalition's value is the score of the
model keeping exactly those players, read from the score store and scored only when missing.

With no scorer the game runs from the store alone (no model); a missing coalition is then an error
that says which one. The value is the paper's metric (per document: correct or not), or a continuous
one from the stored log-likelihoods, far less noisy on a small model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lsi.game import DocumentGame, MissingCoalitionError, bit_strings
from lsi.scoring import Scorer
from lsi.store import ScoreStore

VALUE_KINDS = ("score", "margin")


def chance_level(meta: dict) -> float:
    """The score of guessing: 1 / number of choices, or the majority-class rate where that is higher."""
    return max(meta["chance"], meta["majority_rate"])


def margins(meta: dict, loglik: np.ndarray) -> np.ndarray:
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


class LayerGame(DocumentGame):
    """Players are the store's players in order; a coalition is the set of kept players."""

    def __init__(
        self,
        store: ScoreStore,
        value: str = "score",
        scorer: Scorer | Callable[[], Scorer] | None = None,
    ) -> None:
        if value not in VALUE_KINDS:
            raise ValueError(f"unknown value '{value}'; use one of: {', '.join(VALUE_KINDS)}")
        meta = store.meta
        chance = chance_level(meta) if value == "score" else None
        super().__init__(len(meta["players"]), meta["players"], chance)
        self.store = store
        self.kind = value
        self._scorer = scorer
        self._rows = {row["coalition"]: row for row in store.frame().to_dict("records")}

    @property
    def scorer(self) -> Scorer | None:
        """The scorer, created on first need (loading a model is slow and often unnecessary)."""
        if callable(self._scorer) and not isinstance(self._scorer, Scorer):
            self._scorer = self._scorer()
        return self._scorer

    def _compute_documents(self, coalitions: np.ndarray) -> np.ndarray:
        wanted = bit_strings(coalitions)
        missing = [c for c in wanted if c not in self._rows]
        if missing:
            if self._scorer is None:
                raise MissingCoalitionError(
                    f"{len(missing)} coalition(s) are not in the store {self.store.path} "
                    f"(e.g. {missing[0]}); run with a model to score them"
                )
            scored = self.scorer.scores(missing)
            self._rows.update({row["coalition"]: row for row in scored.to_dict("records")})
        return np.stack([self._document_values(self._rows[c]) for c in wanted])

    def _document_values(self, row: dict) -> np.ndarray:
        if self.kind == "margin":
            return margins(self.store.meta, row["loglik"])
        metric = self.store.meta["metric"]
        return np.asarray(row[f"doc_{metric}"], dtype=float)
