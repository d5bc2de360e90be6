"""A coalition whose forward pass overflows (NaN or inf log-likelihoods, e.g. float16 with a cornerstone
removed) is stored with the count of its non-finite requests, and its values are refused unless allowed."""

from __future__ import annotations

import numpy as np
import pytest

import lsi.jobs
from lsi.errors import UserError
from lsi.layer_game import LayerGame
from lsi.scoring import Scorer
from lsi.store import NonFiniteWarning
from lsi.store_check import check


def test_overflowing_requests_are_counted_and_refused(smollm, tmp_path, monkeypatch) -> None:
    broken = "0" + "1" * 29
    score = lsi.jobs.score_requests

    def overflowing(engine, batches, coalitions, n_requests, on_batch=None):  # noqa: ANN001, ANN202
        loglik, greedy = score(engine, batches, coalitions, n_requests, on_batch)
        for i, c in enumerate(coalitions):
            if c == broken:
                loglik[i, [0, 3]] = [np.nan, -np.inf]
        return loglik, greedy

    monkeypatch.setattr(lsi.jobs, "score_requests", overflowing)
    scorer = Scorer(smollm, "piqa", 4, "block", tmp_path)
    rows = scorer.scores(["1" * 30, broken], progress=False).set_index("coalition")
    assert rows.at[broken, "nonfinite"] == 2 and rows.at["1" * 30, "nonfinite"] == 0
    with pytest.warns(NonFiniteWarning, match=f"{broken}: 2 requests"):
        game = LayerGame(scorer.store, scorer=scorer)
    with pytest.raises(UserError, match="--allow-nonfinite"):
        game.value(np.array([[c == "1" for c in broken]]))
    assert check(scorer.store.path) == []  # recorded, so known: not damage
