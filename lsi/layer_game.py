"""The layer game of one (model, task, limit, granularity): a coalition's value is the score of the
model keeping exactly those players, read from the score store and scored only when missing.

With no scorer the game runs from the store alone (no model); a missing coalition is then an error
that says which one. The value is the paper's metric (per document: correct or not), or a continuous
one, the gold log-likelihood margin (`lsi.margins`), far less noisy on a small model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from lsi.choices import Value
from lsi.errors import UserError
from lsi.game import DocumentGame, MissingCoalitionError, bit_strings
from lsi.margins import margins as margins  # re-exported: callers import it from here
from lsi.margins import row_margins
from lsi.store import ScoreStore
from lsi.values import chance_level as chance_level  # re-exported: callers import it from here
from lsi.values import document_values

if TYPE_CHECKING:  # the game reads stores without the model stack; a scorer comes from the caller
    from lsi.scoring import Scorer


class LayerGame(DocumentGame):
    """Players are the store's players in order; a coalition is the set of kept players."""

    def __init__(
        self,
        store: ScoreStore,
        value: str = "score",
        scorer: Scorer | Callable[[], Scorer] | None = None,
        allow_nonfinite: bool = False,
        metric: str | None = None,
    ) -> None:
        """`metric`: the lm-eval metric (as the store's `metrics` name it) or gold_loglik that makes the
        value, in place of the task's (`value="score"` only)."""
        value = Value.parse(value).value
        meta = store.meta
        self.metric = metric or meta["metric"]
        chance = chance_level(meta, self.metric) if value == "score" else None
        super().__init__(len(meta["players"]), meta["players"], chance)
        self.store = store
        self.kind = value
        self._scorer = scorer
        self.allow_nonfinite = allow_nonfinite
        self._rows = {row["coalition"]: row for row in store.usable(allow_nonfinite).to_dict("records")}

    @property
    def scorer(self) -> Scorer | None:
        """The scorer, created on first need (loading a model is slow and often unnecessary)."""
        if self._scorer is not None and not hasattr(self._scorer, "scores"):
            self._scorer = self._scorer()
        return self._scorer

    def _compute_documents(self, coalitions: np.ndarray) -> np.ndarray:
        wanted = bit_strings(coalitions)
        missing = [c for c in wanted if c not in self._rows]
        if missing and not self.allow_nonfinite:
            self._rows.update(
                {
                    r["coalition"]: r
                    for r in self.store.frame().to_dict("records")
                    if r["coalition"] in missing
                }
            )
            missing = [c for c in wanted if c not in self._rows]
        if missing:
            if self._scorer is None:
                raise MissingCoalitionError(
                    f"{len(missing)} coalition(s) are not in the store {self.store.path} "
                    f"(e.g. {missing[0]}); run with a model to score them"
                )
            scored = self.scorer.scores(missing)
            self._rows.update({row["coalition"]: row for row in scored.to_dict("records")})
        for c in wanted:
            if not self.allow_nonfinite and (self._rows[c].get("nonfinite") or 0) > 0:
                raise UserError(
                    f"coalition {c} has {self._rows[c]['nonfinite']} request(s) with non-finite "
                    "log-likelihoods (a float16 overflow?); rescore in bfloat16 or float32, or pass "
                    "--allow-nonfinite"
                )
        return np.stack([self._document_values(self._rows[c]) for c in wanted])

    def _document_values(self, row: dict) -> np.ndarray:
        if self.kind == "margin":
            return row_margins(self.store.meta, row)
        return document_values(self.store.meta, row, self.metric)
