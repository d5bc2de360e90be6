"""What a results folder holds, as tables: its score stores and its Shapley estimates.

Figures and reports read results through here, so they never need a model. Estimates are JSON files
in `<store>/estimates/`, one per (estimator, value, budget, seed, player set): a rerun replaces it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from lsi.estimators import Estimate
from lsi.players import single_removals
from lsi.provenance import now, versions
from lsi.store import ScoreStore, slug


def store_index(results: Path, choices_only: bool = True) -> pd.DataFrame:
    """One row per score store under `results`: its configuration and what it holds. By default only
    multiple-choice stores (the paper's tables and figures are of those); `choices_only=False` adds the
    stores of other output types, whose values `lsi.values` reads."""
    rows = []
    for meta_file in sorted(Path(results).glob("scores/*/*/*/meta.json")):
        store = ScoreStore.open(meta_file.parent)
        meta = store.meta
        output_type = meta.get("task_info", {}).get("output_type", "multiple_choice")
        if choices_only and output_type != "multiple_choice":
            continue
        players = meta["players"]
        stored = store.coalitions()
        singles = set(single_removals(len(players)))
        rows.append(
            {
                "model": meta["model"]["name"],
                "title": meta["model"].get("title", meta["model"]["name"]),
                "family": meta["model"]["family"],
                "moe": any(p.startswith("moe.") for p in players) or meta["model"]["family"] == "mixtral",
                "task": meta["task"],
                "output_type": output_type,
                "split": meta["split"],
                "metric": meta["metric"],
                "granularity": meta["granularity"],
                "dtype": meta["dtype"],
                "limit": meta["limit"],
                "n_docs": meta["n_docs"],
                "n_players": len(players),
                "coalitions": len(stored),
                "has_ablation": "1" * len(players) in stored and singles <= stored,
                "path": meta_file.parent,
            }
        )
    frame = pd.DataFrame(rows)  # a store of every document has no limit: integers with gaps stay integers
    return frame.astype({"limit": "Int64"}) if rows else frame


def estimate_index(results: Path) -> pd.DataFrame:
    """One row per estimate under `results`, with the values and intervals as lists. Every row names
    its `metric`: estimates written before they named it are of their store's default metric."""
    rows = []
    for path in sorted(Path(results).glob("scores/*/*/*/estimates/*.json")):
        record = json.loads(path.read_text())
        store = path.parent.parent
        if record.get("metric") is None:
            record["metric"] = ScoreStore.open(store).meta["metric"]
        rows.append(record | {"file": path, "store": store})
    return pd.DataFrame(rows)


def estimate_value(value: str, metric: str | None) -> str:
    """The `value` an estimate is filed under: the game's value, or `score-<metric>` for the score of a
    metric asked for by name (so estimates of two metrics of one store never replace each other)."""
    return value if metric is None else f"score-{slug(metric)}"


def save_estimate(store: ScoreStore, estimate: Estimate, config: dict) -> tuple[Path, dict]:
    """Write an estimate with its configuration (model, task, value, `restricted_to`...) next to its
    store; returns the file and its record. A rerun that reproduces the file's estimate, configuration
    and versions leaves the file (and its creation date) as it was, so rerunning a finished cell
    changes no committed file."""
    subset = config.get("restricted_to")
    players = "all" if not subset else hashlib.sha1(",".join(estimate.players).encode()).hexdigest()[:8]
    record = estimate.to_dict() | config
    name = f"{estimate.estimator}-{config['value']}-b{estimate.budget}-s{estimate.seed}-{players}.json"
    path = store.path / "estimates" / name
    path.parent.mkdir(exist_ok=True)
    record |= {"created": now(), "versions": versions(), "store": str(store.path)}
    if path.exists():
        before = json.loads(path.read_text())
        if json.loads(json.dumps(record)) | {"created": before.get("created")} == before:
            return path, before
    path.write_text(json.dumps(record, indent=1))
    return path, record


def save_removal_curves(
    store: ScoreStore, curves: dict[str, pd.DataFrame], estimator: str, value: str
) -> Path:
    """Cumulative removal curves (one per order, the orders ranked by an estimate) next to the store."""
    path = store.path / "removal" / f"{estimator}-{value}.csv"
    path.parent.mkdir(exist_ok=True)
    pd.concat([curve.assign(order=name) for name, curve in curves.items()]).to_csv(path, index=False)
    return path


def write_table(frame: pd.DataFrame, folder: Path, stem: str) -> list[Path]:
    """A table as CSV (for code) and Markdown (for reading), side by side."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    csv, markdown = folder / f"{stem}.csv", folder / f"{stem}.md"
    frame.to_csv(csv, index=False)
    markdown.write_text(frame.to_markdown(index=False, floatfmt=".4g") + "\n")
    return [csv, markdown]
