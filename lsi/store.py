"""The coalition score store: every coalition ever scored for one (model, dtype, task, split, limit,
granularity, lm-eval version), on disk, readable with pandas alone.

Layout of one store (a folder):
- `meta.json`: how the scores were made, and the document/request layout of the per-request lists;
- `parts/*.parquet`: one file per flush, rows = coalitions. Files are written whole (temp + rename),
  so an interrupted run keeps every flushed part and never leaves a torn one.
  `pd.read_parquet(folder / "parts")` reads them all. The per-request log-likelihood lists are most
  of the bytes; zstd over byte-stream-split floats stores them in about two thirds of the space of
  the default encoding, which matters for committed results and for the 64 MiB a lent GPU carries.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

# The fields that define a store: two runs may share one only if all of these agree.
IDENTITY_KEYS = (
    "weights_sha256",
    "dtype",
    "task",
    "split",
    "limit",
    "granularity",
    "players",
    "lm_eval",
    "format",
)
FORMAT = 1


class StoreMismatchError(ValueError):
    """A store on disk was made with another model, task, dtype, limit or layout."""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def store_dir(
    results: Path, model_name: str, task: str, granularity: str, dtype: str, limit: int | None
) -> Path:
    """Where the store of one configuration lives under a results folder."""
    limit_tag = "all" if limit is None else str(limit)
    return Path(results) / "scores" / _slug(model_name) / task / f"{granularity}-{dtype}-limit{limit_tag}"


@dataclass
class ScoreStore:
    path: Path
    meta: dict

    @classmethod
    def open(cls, path: Path, meta: dict | None = None) -> ScoreStore:
        """Open a store; with `meta`, create it if absent or check that it is the same configuration."""
        path = Path(path)
        meta_file = path / "meta.json"
        if meta_file.exists():
            try:
                stored = json.loads(meta_file.read_text())
            except (OSError, json.JSONDecodeError) as err:
                raise StoreMismatchError(
                    f"unreadable store metadata {meta_file}: {err}; delete the folder"
                ) from err
            if meta is not None:
                _check_same(stored, meta, path)
            return cls(path, stored)
        if meta is None:
            raise FileNotFoundError(
                f"no score store at {path}; score something first (e.g. `lsi ablate`) or check --results"
            )
        (path / "parts").mkdir(parents=True, exist_ok=True)
        _write_atomic(meta_file, json.dumps(meta, indent=1).encode())
        return cls(path, meta)

    def frame(self) -> pd.DataFrame:
        """Every stored coalition, one row each (the first copy where two runs scored the same one)."""
        parts = sorted((self.path / "parts").glob("*.parquet"))
        if not parts:
            return pd.DataFrame(columns=["coalition"])
        frame = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
        return frame.drop_duplicates("coalition", keep="first").reset_index(drop=True)

    def coalitions(self) -> set[str]:
        parts = sorted((self.path / "parts").glob("*.parquet"))
        return {c for p in parts for c in pd.read_parquet(p, columns=["coalition"])["coalition"]}

    def append(self, rows: pd.DataFrame) -> Path:
        """Flush scored coalitions as one new part file."""
        name = f"part-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.monotonic_ns()}.parquet"
        target = self.path / "parts" / name
        tmp = target.with_suffix(".tmp")
        table = pa.Table.from_pandas(rows, preserve_index=False)
        floats = {
            field.name
            for field in table.schema
            if pa.types.is_list(field.type) and pa.types.is_floating(field.type.value_type)
        }
        pq.write_table(  # byte-stream split applies only where dictionary encoding is off
            table,
            tmp,
            compression="zstd",
            use_dictionary=[name for name in table.column_names if name not in floats],
            use_byte_stream_split=[f"{name}.list.element" for name in floats] or False,
        )
        tmp.replace(target)
        return target

    def compact(self) -> None:
        """Merge all parts into one file (fewer files to commit and read)."""
        parts = sorted((self.path / "parts").glob("*.parquet"))
        if len(parts) <= 1:
            return
        self.append(self.frame())
        for p in parts:
            p.unlink()


def _check_same(stored: dict, wanted: dict, path: Path) -> None:
    for key in IDENTITY_KEYS:
        if stored.get(key) != wanted.get(key):
            raise StoreMismatchError(
                f"the score store at {path} was made with a different {key} "
                f"({_short(stored.get(key))} vs {_short(wanted.get(key))}); use another --results folder "
                "or delete that store"
            )


def _short(value: object) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def _write_atomic(target: Path, data: bytes) -> None:
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(target)
