"""Verify score stores part by part, and set damaged parts aside.

A store is the only copy of hours of scoring, and it can be damaged outside lsi's control: a bad copy,
a disk that filled up under another program, an edit by hand. `check` reads every part on its own and
reports what it finds (unreadable, wrong schema, coalitions of the wrong length, a coalition in two
parts, non-finite values); `repair` moves unreadable and malformed parts into `damaged/` beside
`parts/` (their coalitions are then scored again on the next run) and merges duplicates.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lsi.errors import UserError
from lsi.store import ScoreStore, StoreMismatchError

REQUIRED_COLUMNS = ("coalition", "score")
# Per-coalition list columns whose values must be finite (the log-likelihoods, or their margins).
FINITE_LISTS = ("loglik", "doc_margin")
# Problems that make a part unusable: `repair` sets such parts aside.
DAMAGE = ("unreadable", "schema", "identity")


@dataclass(frozen=True)
class Problem:
    path: Path  # the store's meta.json or one of its parts
    kind: str  # "metadata", one of DAMAGE, "duplicate" or "non-finite"
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.kind}: {self.detail}"


def stores_under(path: Path) -> list[Path]:
    """The store folders at or under `path` (a store, or a results folder holding many)."""
    path = Path(path)
    if (path / "meta.json").exists():
        return [path]
    found = sorted(meta.parent for meta in path.glob("**/meta.json") if (meta.parent / "parts").is_dir())
    if not found:
        raise UserError(f"no score store at or under {path}; give a store folder or a results folder")
    return found


def check(path: Path) -> list[Problem]:
    """Every problem of the store at `path`, part by part; empty when the store is sound."""
    try:
        store = ScoreStore.open(path)
    except StoreMismatchError as err:
        return [Problem(Path(path) / "meta.json", "metadata", str(err))]
    problems: list[Problem] = []
    first_part: dict[str, Path] = {}
    for part in store.parts():
        table, problem = _read_part(part, len(store.meta["players"]))
        if problem:
            problems.append(problem)
            continue
        for coalition in table.column("coalition").to_pylist():
            if first_part.setdefault(coalition, part) != part:
                problems.append(
                    Problem(part, "duplicate", f"{coalition} is also in {first_part[coalition].name}")
                )
        problems += _non_finite(part, table)
        problems += _per_document(part, table, store.meta.get("n_docs"))
    return problems


def repair(path: Path) -> list[Path]:
    """Move the store's damaged parts into `damaged/` and merge duplicate coalitions; returns the
    parts set aside. Non-finite values are reported by `check`, not removed."""
    problems = check(path)
    if any(p.kind == "metadata" for p in problems):
        raise UserError(f"{problems[0]}: repair needs readable metadata")
    aside = sorted({p.path for p in problems if p.kind in DAMAGE})
    if aside:
        damaged = Path(path) / "damaged"
        damaged.mkdir(exist_ok=True)
        for part in aside:
            shutil.move(part, damaged / part.name)
    if any(p.kind == "duplicate" for p in problems):
        ScoreStore.open(path).compact()
    return aside


def _read_part(part: Path, n_players: int) -> tuple[pa.Table | None, Problem | None]:
    try:
        table = pq.read_table(part)
    except (OSError, pa.ArrowException) as err:
        return None, Problem(part, "unreadable", str(err).splitlines()[0][:200])
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        return None, Problem(part, "schema", f"no {', '.join(missing)} column")
    bad = [c for c in table.column("coalition").to_pylist() if not _is_coalition(c, n_players)]
    if bad:
        return None, Problem(
            part, "identity", f"{len(bad)} coalition(s) are not {n_players}-player bit strings"
        )
    return table, None


def _is_coalition(value: object, n_players: int) -> bool:
    return isinstance(value, str) and len(value) == n_players and not set(value) - {"0", "1"}


def _per_document(part: Path, table: pa.Table, n_docs: int | None) -> list[Problem]:
    """Columns of tasks without choices: `metrics` and `doc_metrics` hold JSON objects (the latter one
    list of n_docs numbers per metric), `generations` one text per document."""
    problems = []
    for name in ("metrics", "doc_metrics"):
        for text in table.column(name).to_pylist() if name in table.column_names else []:
            try:
                value = json.loads(text) if text is not None else {}
            except (TypeError, json.JSONDecodeError):
                value = None
            lists = value.values() if name == "doc_metrics" and isinstance(value, dict) else []
            if not isinstance(value, dict) or any(len(v) != n_docs for v in lists):
                problems.append(
                    Problem(part, "schema", f"a {name} value is not a JSON object of the documents")
                )
                break
    if "generations" in table.column_names:
        lengths = {len(texts) for texts in table.column("generations").to_pylist() if texts is not None}
        if lengths - {n_docs}:
            problems.append(
                Problem(part, "schema", f"generations hold {sorted(lengths)} texts, not {n_docs}")
            )
    return problems


def _non_finite(part: Path, table: pa.Table) -> list[Problem]:
    problems = []
    # Requests a scorer found non-finite and recorded (`nonfinite`): known, left out of values, not damage.
    # Rows from parts written before the column existed hold nulls once merged: none recorded.
    counts = (
        table.column("nonfinite").fill_null(0).to_numpy()
        if "nonfinite" in table.column_names
        else np.zeros(table.num_rows, dtype=int)
    )
    flagged = counts > 0
    scores = np.asarray(table.column("score").to_numpy(zero_copy_only=False), dtype=float)
    bad_scores = int((~np.isfinite(scores) & ~flagged).sum())
    if bad_scores:
        problems.append(Problem(part, "non-finite", f"{bad_scores} score(s)"))
    recorded = int(counts.sum())
    for name in FINITE_LISTS:
        if name in table.column_names:
            values = table.column(name).combine_chunks().flatten().to_numpy(zero_copy_only=False)
            count = int((~np.isfinite(np.asarray(values, dtype=float))).sum())
            if name == "loglik":
                count -= recorded
            if count > 0:
                problems.append(Problem(part, "non-finite", f"{count} value(s) in {name}"))
    return problems
