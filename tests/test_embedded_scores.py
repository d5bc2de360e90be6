"""The full embedded model on every required task: above chance where it can be, reported where not.

SmolLM2-135M-Instruct (Q4_1) is clearly above chance (one-sided binomial test against the larger of
1/choices and the split's majority-class rate, p < 0.05) on arc_easy, arc_challenge, piqa, openbookqa
and hellaswag. It is not on boolq (it answers " no" to most questions; acc 0.32 on the first 100
against a majority rate of 0.62), winogrande (0.48) and mmlu (0.289 on 2 docs per subject against
0.269): ablations of those (model, task) pairs measure noise and are flagged as such.
"""

from __future__ import annotations

import numpy as np
import pytest

from lsi.analysis import above_chance
from lsi.layer_game import chance_level
from lsi.scoring import Scorer

pytestmark = pytest.mark.slow

ABOVE_CHANCE = {"arc_easy": 100, "arc_challenge": 100, "piqa": 100, "openbookqa": 100, "hellaswag": 100}
NOT_ABOVE_CHANCE = {"boolq": 100, "winogrande": 100, "mmlu": 2}


@pytest.mark.parametrize(("task", "limit"), [*ABOVE_CHANCE.items(), *NOT_ABOVE_CHANCE.items()])
def test_full_model_against_chance(smollm, tmp_path, task, limit):
    scorer = Scorer(smollm, task, limit, "block", tmp_path)
    row = scorer.scores(["1" * len(scorer.players)], progress=False).iloc[0]
    per_doc = np.asarray(row[f"doc_{scorer.task.metric}"], dtype=float)
    chance = chance_level(scorer.store.meta)
    assert per_doc.mean() == pytest.approx(row.score)
    print(f"{task}: {scorer.task.metric} {row.score:.3f} vs chance {chance:.3f} on {len(per_doc)} docs")
    assert above_chance(per_doc, chance) == (task in ABOVE_CHANCE)
