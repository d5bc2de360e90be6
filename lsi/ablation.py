"""Single-player ablation: the full model against every coalition that removes one player."""

from __future__ import annotations

import pandas as pd

from lsi.players import coalition_without, full_coalition
from lsi.scoring import Scorer


def single_ablation(scorer: Scorer, progress: bool = True) -> pd.DataFrame:
    """One row per player: the score without it and the drop from the full model (full - ablated).

    The full model's score is in `table.attrs["full"]`.
    """
    players = scorer.players
    full = full_coalition(players)
    singles = [coalition_without(players, [p]) for p in players]
    rows = scorer.scores([full, *singles], progress=progress).set_index("coalition")
    full_score = float(rows.loc[full, "score"])
    table = pd.DataFrame(
        {
            "player": [p.name for p in players],
            "kind": [p.kind for p in players],
            "block": [p.block for p in players],
            "score": [float(rows.loc[c, "score"]) for c in singles],
            "acc": [float(rows.loc[c, "acc"]) for c in singles],
            "acc_norm": [rows.loc[c, "acc_norm"] for c in singles],
        }
    )
    table["drop"] = full_score - table["score"]
    table.attrs["full"] = full_score
    return table
