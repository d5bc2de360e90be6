"""Every importance measure of one store's players side by side: the Shapley value (any estimator),
the single-player ablation drop, and the one-pass measures of the depth-pruning literature
(`lsi.measures`), with their rank correlations.

The one-pass measures need the model once; they are saved next to the store
(`measures/one-pass.json`, with how they were made), so the table is rebuilt later without a model.
Every column reads "higher = more important", so each gives the same pruning order: lowest first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from lsi.config import RunConfig
from lsi.errors import UserError
from lsi.provenance import made_from, now, versions
from lsi.store import ScoreStore

MEASURES = ("shapley", "ablation", "bi", "angular", "llmdrop")
ONE_PASS = ("bi", "angular", "llmdrop")
# The papers that define the one-pass measures (docs/pruning.md cites them in full).
SOURCES = {
    "bi": "ShortGPT (Men et al. 2024, arXiv:2403.03853): Block Influence",
    "angular": "Gromov et al. 2024 (arXiv:2403.17887): angular distance of the last token",
    "llmdrop": "LLM-Drop (He et al. 2024, arXiv:2406.15786): 1 - cos(X, X + F(LN(X)))",
}


def parse_measures(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """Measure names, checked: all of them by default."""
    names = (
        MEASURES if not text else [m.strip() for m in (text.split(",") if isinstance(text, str) else text)]
    )
    unknown = [m for m in names if m not in MEASURES]
    if unknown:
        raise UserError(f"unknown measure {', '.join(unknown)}; measures are {', '.join(MEASURES)}")
    return tuple(dict.fromkeys(names))


@dataclass
class Importance:
    """The side-by-side table, Gromov et al.'s spans, and the Spearman correlations between measures."""

    table: pd.DataFrame  # player, kind, block, then one column per measure (NaN where it is undefined)
    spans: pd.DataFrame | None  # k, first_block, last_block, distance (block players, with `angular`)
    correlations: pd.DataFrame  # measure_a, measure_b, spearman, p_value, players
    record: dict  # what every column was computed from

    def order(self, measure: str) -> list[str]:
        """Players in pruning order by one measure: least important first (ties in player order)."""
        column = self.table.set_index("player")[measure].dropna()
        return list(column.sort_values(kind="stable").index)


def store_title(meta: dict, granularity: str) -> str:
    """Model, task, documents and players: what a figure of one store's measures names."""
    return f"{meta['model']['title']} | {meta['task']} ({meta['n_docs']} docs) | {granularity} players"


def measures_path(store: ScoreStore) -> Path:
    return store.path / "measures" / "one-pass.json"


def one_pass_record(store: ScoreStore, scorer: Callable[[], object]) -> dict:
    """The store's one-pass measures, computed once with the model (over the store's documents) and
    read back from the store's folder afterwards."""
    path = measures_path(store)
    if path.exists():
        return json.loads(path.read_text())
    from lsi.measures import lm_eval_inputs, one_pass_measures

    s = scorer()
    sequences = lm_eval_inputs(s.requests, s.max_length)
    pad = s.lm.tokenizer.pad_token_id
    measured = one_pass_measures(s.lm.model, sequences, 0 if pad is None else pad)
    record = made_from(store.meta) | {
        "sequences": measured.sequences,
        "tokens": measured.tokens,
        "block_influence": measured.block_influence.tolist(),
        "llm_drop": measured.llm_drop.tolist(),  # per block: attention, FFN
        "angular": measured.angular.tolist(),
        "spans": measured.best_spans(),
        "sources": SOURCES,
        "created": now(),
        "versions": versions(),
    }
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return record


def importance(
    config: RunConfig,
    store: ScoreStore,
    scorer: Callable[[], object],
    measures: Sequence[str] = MEASURES,
    progress: bool = True,
) -> Importance:
    """Every requested measure for the store's players; scores what the store lacks."""
    from lsi.pipeline import ablation, shapley

    players = store.meta["players"]
    blocks = [int(name.split(".")[1]) for name in players]
    kinds = [name.split(".")[0] for name in players]
    table = pd.DataFrame({"player": players, "kind": kinds, "block": blocks})
    record: dict = {"granularity": config.granularity.value, "store": str(store.path)}
    if "shapley" in measures:
        estimate, path, _ = shapley(config, store, scorer)
        table["shapley"] = estimate.values
        table["shapley_stderr"] = estimate.stderr
        record["shapley"] = {
            "estimator": config.estimator,
            "evaluations": estimate.evaluations,
            "file": str(path),
        }
    if "ablation" in measures:
        flagged = ablation(store, scorer, None, progress, config.allow_nonfinite, config.metric)
        table["ablation"] = flagged["drop"].to_numpy()
        record["ablation"] = {"metric": flagged.attrs["metric"], "full": flagged.attrs["full"]}
    spans = None
    if set(measures) & set(ONE_PASS):
        one_pass = one_pass_record(store, scorer)
        record["one_pass"] = str(measures_path(store))
        whole = set(kinds) == {"block"}
        if "bi" in measures:  # blocks only
            table["bi"] = [one_pass["block_influence"][b] if whole else np.nan for b in blocks]
        if "llmdrop" in measures:  # branches only
            table["llmdrop"] = [
                np.nan if whole else one_pass["llm_drop"][b][0 if k == "attn" else 1]
                for k, b in zip(kinds, blocks, strict=True)
            ]
        if "angular" in measures and whole:
            spans = pd.DataFrame(one_pass["spans"])
    return Importance(table, spans, correlations(table), record)


def correlations(table: pd.DataFrame) -> pd.DataFrame:
    """Spearman's rank correlation of every pair of per-player measures, over the players both define."""
    columns = [m for m in MEASURES if m in table and table[m].notna().any()]
    rows = []
    for a, b in combinations(columns, 2):
        both = table[[a, b]].dropna()
        rho, p = spearmanr(both[a], both[b]) if len(both) > 2 else (np.nan, np.nan)
        rows.append({"measure_a": a, "measure_b": b, "spearman": rho, "p_value": p, "players": len(both)})
    return pd.DataFrame(rows, columns=["measure_a", "measure_b", "spearman", "p_value", "players"])


def save_importance(imp: Importance, store: ScoreStore, title: str) -> list[Path]:
    """The table, the correlations, the spans and the figure, next to the store's one-pass measures."""
    from lsi import figures, style

    folder = store.path / "measures"
    folder.mkdir(exist_ok=True)
    stem = f"importance-{imp.record.get('shapley', {}).get('estimator', 'none')}"
    paths = [folder / f"{stem}.csv", folder / f"{stem}-correlations.csv"]
    imp.table.to_csv(paths[0], index=False)
    imp.correlations.to_csv(paths[1], index=False)
    if imp.spans is not None:
        paths.append(folder / "angular-spans.csv")
        imp.spans.to_csv(paths[-1], index=False)
    return paths + style.save(figures.importance_measures(imp.table, imp.correlations, title), folder, stem)
