"""The full embedded model on every required task: above chance where it can be, reported where not.

The verdict is a one-sided binomial test against the larger of 1/choices and the split's
majority-class rate. The test derives its expectations instead of freezing them: the verdict must
match that test recomputed here from lm-eval's documents, and on every task where the committed
1000-document study found SmolLM2 clearly above chance (figures/cornerstones.csv), the first 100
documents must be too. Printed: each task's score against chance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lsi.analysis import above_chance
from lsi.layer_game import chance_level
from lsi.scoring import Scorer

pytestmark = pytest.mark.slow

LIMITS = {
    task: 100
    for task in ("arc_easy", "arc_challenge", "piqa", "openbookqa", "hellaswag", "boolq", "winogrande")
}
LIMITS["mmlu"] = 2  # per subject: 57 subjects
CORNERSTONES = Path(__file__).resolve().parent.parent / "figures" / "cornerstones.csv"


def _above_chance_in_the_study() -> set[str]:
    """Tasks on which the committed 1000-document study found SmolLM2 (whole blocks) above chance."""
    report = pd.read_csv(CORNERSTONES)
    study = report[
        (report["model"] == "smollm2-135m") & (report["limit"] == 1000) & (report["granularity"] == "block")
    ]
    return set(study.loc[study["above_chance"], "task"])


@pytest.mark.parametrize(("task", "limit"), LIMITS.items())
def test_full_model_against_chance(smollm, tmp_path, task, limit):
    scorer = Scorer(smollm, task, limit, "block", tmp_path)
    row = scorer.scores(["1" * len(scorer.players)], progress=False).iloc[0]
    per_doc = np.asarray(row[f"doc_{scorer.task.metric}"], dtype=float)
    chance = chance_level(scorer.store.meta)
    assert per_doc.mean() == pytest.approx(row.score)
    print(f"{task}: {scorer.task.metric} {row.score:.3f} vs chance {chance:.3f} on {len(per_doc)} docs")
    # The chance level from lm-eval's documents: uniform guessing, or the split's majority class.
    uniform = np.mean([1 / len(doc.choices) for doc in scorer.docs])
    assert chance == pytest.approx(max(uniform, scorer.task.split_majority_rate))
    expected = stats.binomtest(int(per_doc.sum()), len(per_doc), chance, alternative="greater").pvalue < 0.05
    assert above_chance(per_doc, chance) == expected
    if task in _above_chance_in_the_study():
        assert expected, f"{task}: above chance on 1000 documents, not on the first {limit}"
