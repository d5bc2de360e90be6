"""Two models of one family side by side along relative depth: does the Shapley profile keep its shape
as the model grows? Blocks differ in number, so players are placed at (block + 0.5) / blocks and the
smaller model's profile is interpolated onto the larger one's depths, kind by kind (attention, FFN)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr

from lsi.report import CONFIGURATION


def relative_depths(players: Sequence[str]) -> pd.DataFrame:
    """One row per player (`attn.3`, `mlp.3`, `block.3`...): its kind, block and relative depth."""
    kinds, blocks = zip(*(name.split(".") for name in players), strict=True)
    frame = pd.DataFrame({"player": list(players), "kind": kinds, "block": [int(b) for b in blocks]})
    frame["depth"] = relative_depth(frame["block"], frame["block"].max() + 1)
    return frame


def relative_depth(block: int | pd.Series, n_blocks: int) -> float | pd.Series:
    """Where a block sits in a model of `n_blocks`: the middle of its slice of [0, 1] (array or scalar)."""
    return (block + 0.5) / n_blocks


def depth_profile(players: Sequence[str], values: Sequence[float]) -> pd.DataFrame:
    """`relative_depths` with each player's value, and that value as a multiple of an even share of the
    total (`share`), which puts models with different numbers of players on one scale."""
    frame = relative_depths(players).assign(value=np.asarray(values, dtype=float))
    frame["share"] = frame["value"] * len(frame) / frame["value"].sum()
    return frame


def depth_correlation(
    small: pd.DataFrame, large: pd.DataFrame, permutations: int = 10_000, seed: int = 0
) -> pd.DataFrame:
    """Per kind both `depth_profile`s have: the Spearman correlation of the larger model's values with
    the smaller's interpolated onto its depths, and a two-sided permutation p-value (the larger model's
    values shuffled across its players of that kind; (hits + 1) / (permutations + 1)).

    Neighbouring layers' values are correlated, so the shuffles, which break that, make the p-value
    somewhat optimistic; it answers "is there any shared shape", not "how much"."""
    rng = np.random.default_rng(seed)
    rows = []
    for kind in [k for k in dict.fromkeys(large["kind"]) if k in set(small["kind"])]:
        s = small[small["kind"] == kind].sort_values("depth")
        target = large[large["kind"] == kind].sort_values("depth")
        interpolated = np.interp(target["depth"], s["depth"], s["value"])
        observed = spearmanr(interpolated, target["value"]).statistic
        ranks = rankdata(target["value"])  # shuffling values then ranking = shuffling their ranks
        shuffled = _pearson_rows(
            rankdata(interpolated), np.stack([rng.permutation(ranks) for _ in range(permutations)])
        )
        hits = int(np.sum(np.abs(shuffled) >= abs(observed) - 1e-12))
        rows.append(
            {
                "kind": kind,
                "players_small": len(s),
                "players_large": len(target),
                "spearman": float(observed),
                "p_value": (hits + 1) / (permutations + 1),
                "permutations": permutations,
            }
        )
    return pd.DataFrame(rows)


def _pearson_rows(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The Pearson correlation of `x` with each row, at once: Spearman's statistic when both hold ranks.
    A loop of `spearmanr` calls took about 10 s per kind at 10,000 permutations."""
    xc = x - x.mean()
    rc = rows - rows.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant profile has no correlation: nan
        return rc @ xc / np.sqrt((rc**2).sum(axis=1) * (xc @ xc))


def family_pairs(stores: pd.DataFrame) -> list[tuple[pd.Series, pd.Series]]:
    """Pairs of stores (`lsi.results.store_index` rows) of one family, task and configuration (granularity,
    dtype, limit) from two models of different depths, the shallower first."""
    key = ["family", "task", *CONFIGURATION[1:]]  # a configuration, the model's name aside
    pairs = []
    for _, group in stores.groupby(key, dropna=False, sort=False):
        ordered = group.sort_values("n_players")
        pairs.extend(
            (ordered.iloc[i], ordered.iloc[j])
            for i in range(len(ordered))
            for j in range(i + 1, len(ordered))
            if ordered.iloc[i]["n_players"] < ordered.iloc[j]["n_players"]
        )
    return pairs


@dataclass
class SizeComparison:
    """One task at two sizes of a family: what section 14 of the figures notebook shows of a pair."""

    profiles: dict[str, pd.DataFrame]  # model -> depth_profile, the shallower first; {} without estimates
    cornerstones: dict[str, list[str]]  # model -> its cornerstone players
    rows: list[dict]  # one per model: above chance, cornerstones at their depth, concentration
    # depth_correlation, with the two models, the task and the limit; empty without profiles
    correlation: pd.DataFrame
    title: str
    stem: str


# Columns of `lsi.report` rows that say how concentrated the importance is.
CONCENTRATION = ("positive_mass_share_cornerstone", "mean_drop_cornerstone", "mean_drop_other")


def compare_sizes(
    pair: tuple[pd.Series, pd.Series], estimates: Sequence[dict | None], report: pd.DataFrame
) -> SizeComparison:
    """Assemble one `family_pairs` pair: its two rows of the claims report (`lsi.report`, indexed by task
    and CONFIGURATION; an ablation suffices) give the cornerstones and the concentration of importance,
    and its two Shapley estimates (records with players and values, in pair order), once both exist,
    become depth profiles and their correlation."""
    models = [store["model"] for store in pair]
    profiles = (
        {m: depth_profile(e["players"], e["values"]) for m, e in zip(models, estimates, strict=True)}
        if all(e is not None for e in estimates)
        else {}
    )
    cornerstones, rows = {}, []
    for store in pair:
        row = report.loc[tuple(store[k] for k in report.index.names)]
        cornerstones[store["model"]] = [c for c in row["cornerstones"].split(", ") if c]
        placed = ", ".join(
            f"{c} ({relative_depth(int(c.split('.')[1]), row['n_blocks']):.2f})"
            for c in cornerstones[store["model"]]
        )
        rows.append(
            {k: store[k] for k in ("model", "task", "limit")}
            | {"above_chance": row["above_chance"], "cornerstones": placed}
            | {k: row[k] for k in CONCENTRATION}
        )
    small = pair[0]
    parts = [small["task"], small["granularity"], small["dtype"], f"limit{small['limit']}"]
    correlation = pd.DataFrame()
    if profiles:
        correlation = depth_correlation(*profiles.values()).assign(
            small=models[0], large=models[1], task=small["task"], limit=small["limit"]
        )
    return SizeComparison(
        profiles=profiles,
        cornerstones=cornerstones,
        rows=rows,
        correlation=correlation,
        title=f"{small['title']} and {pair[1]['title']} | " + " | ".join(parts),
        stem=f"scale-{small['family']}-" + "-".join(parts),
    )
