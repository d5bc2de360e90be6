"""Cumulative removal: players removed one by one in a given order, each step scored (new coalitions,
so it needs the scorer, unlike the read-side analysis)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from lsi.errors import UserError
from lsi.players import coalition_without, full_coalition
from lsi.scoring import Scorer


def cumulative_removal(scorer: Scorer, order: Sequence[str], progress: bool = True) -> pd.DataFrame:
    """Remove players one by one in `order` (names) and record the score after each removal."""
    by_name = {p.name: p for p in scorer.players}
    unknown = [name for name in order if name not in by_name]
    if unknown:
        raise UserError(f"unknown players in the removal order: {', '.join(unknown)}")
    steps = [full_coalition(scorer.players)] + [
        coalition_without(scorer.players, [by_name[n] for n in order[: k + 1]]) for k in range(len(order))
    ]
    rows = scorer.scores(steps, progress=progress)
    return pd.DataFrame(
        {"removed": range(len(steps)), "last_removed": [None, *order], "score": rows["score"].to_numpy()}
    )
