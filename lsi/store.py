"""The coalition score store: every coalition ever scored for one (model, dtype, task, split, limit,
granularity, lm-eval version), on disk, readable with pandas alone.

Layout of one store (a folder):
- `meta.json`: how the scores were made, and the document/request layout of the per-request lists;
- `parts/*.parquet`: one file per flush, rows = coalitions. Files are written whole and durably (temp
  file synced, renamed, folder synced), so a crash keeps every flushed part and never leaves a torn
  one. A part damaged anyway (a bad copy, a full disk elsewhere) is skipped with a warning that names
  it: the other rows stay readable, its coalitions count as unscored and are scored again, and
  `lsi store check` / `lsi store repair` (`lsi.store_check`) find it and set it aside.
  `pd.read_parquet(folder / "parts")` reads them all. The per-request log-likelihood lists are most
  of the bytes; zstd over byte-stream-split floats stores them in about two thirds of the space of
  the default encoding, which matters for committed results and for the 64 MiB a lent GPU carries.

A finished store can be slimmed (`ScoreStore.slim`): each row's `loglik` list is replaced by a
`doc_margin` list (float32, or float16 for a store scored in 16-bit floats; one gold margin per
document, `lsi.margins`), the only value read from them, and meta.json records it under "slimmed".
Rows appended later carry `loglik` again; readers take whichever a row has.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lsi.errors import UserError
from lsi.margins import row_margins
from lsi.provenance import now

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
# Identity added after stores were first written: absent (None) in older stores, which are stock tasks.
LATER_IDENTITY_KEYS = ("task_files",)
FORMAT = 1
# A store is slimmed once, when finished: a high zstd level is worth its time there (about 7% smaller
# than the default level, which appends keep because they run between scoring chunks).
SLIM_ZSTD_LEVEL = 19
MARGIN_ENCODINGS = {"float32": np.float32, "float16": np.float16}


class NonFiniteWarning(UserWarning):
    """Coalitions whose log-likelihoods are not all finite were left out of values and tables."""


class DamagedPartWarning(UserWarning):
    """A part file could not be read; its coalitions are left out until scored again."""


class StoreMismatchError(UserError):
    """A store on disk was made with another model, task, dtype, limit or layout."""


class StoreNotFoundError(UserError, FileNotFoundError):
    """No store at a path that was expected to hold one."""


def slug(text: str) -> str:
    """A name safe in a path."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def store_dir(
    results: Path, model_name: str, task: str, granularity: str, dtype: str, limit: int | None
) -> Path:
    """Where the store of one configuration lives under a results folder."""
    limit_tag = "all" if limit is None else str(limit)
    return Path(results) / "scores" / slug(model_name) / task / f"{granularity}-{dtype}-limit{limit_tag}"


@dataclass
class ScoreStore:
    path: Path
    meta: dict
    # Coalitions per part file read so far: parts never change once written, so each is read once.
    _known: dict[str, frozenset[str]] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def open(cls, path: Path, meta: dict | None = None) -> ScoreStore:
        """Open a store; with `meta`, create it if absent or check that it is the same configuration."""
        path = Path(path)
        meta_file = path / "meta.json"
        if meta_file.exists():
            try:
                stored = json.loads(meta_file.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                raise StoreMismatchError(
                    f"unreadable store metadata {meta_file} ({err}); restore it from a copy, or delete "
                    f"the folder {path} to score it again"
                ) from err
            if not isinstance(stored, dict) or not set(IDENTITY_KEYS) <= set(stored):
                raise StoreMismatchError(
                    f"damaged store metadata {meta_file}: it lacks the store's identity; restore it from a "
                    f"copy, or delete the folder {path} to score it again"
                )
            if meta is not None:
                _check_same(stored, meta, path)
            return cls(path, stored)
        if meta is None:
            raise StoreNotFoundError(
                f"no score store at {path}; score something first (e.g. `lsi ablate`) or check --results"
            )
        (path / "parts").mkdir(parents=True, exist_ok=True)
        store = cls(path, meta)
        store.save_meta()
        return store

    def save_meta(self) -> None:
        """Write meta.json whole (temp + rename) and compact: its per-document layout makes indentation
        a third of its bytes."""
        write_atomic(self.path / "meta.json", json.dumps(self.meta, separators=(",", ":")).encode())

    def parts(self) -> list[Path]:
        return sorted((self.path / "parts").glob("*.parquet"))

    def frame(self) -> pd.DataFrame:
        """Every stored coalition, one row each (the first copy where two runs scored the same one);
        a damaged part is skipped with a `DamagedPartWarning`."""
        frames = [f for f in (self._read(p) for p in self.parts()) if f is not None]
        if not frames:
            return pd.DataFrame(columns=["coalition"])
        frame = pd.concat(frames, ignore_index=True)
        return frame.drop_duplicates("coalition", keep="first").reset_index(drop=True)

    def usable(self, allow_nonfinite: bool = False) -> pd.DataFrame:
        """The rows that may enter game values and tables: without coalitions that have non-finite
        log-likelihoods (a float16 overflow), each left out with a `NonFiniteWarning` that says why,
        unless `allow_nonfinite`."""
        frame = self.frame()
        if allow_nonfinite or "nonfinite" not in frame:
            return frame
        bad = frame["nonfinite"].fillna(0) > 0
        if bad.any():
            first = frame[bad].iloc[0]
            warnings.warn(
                f"{int(bad.sum())} coalition(s) of {self.path} have non-finite log-likelihoods (e.g. "
                f"{first['coalition']}: {int(first['nonfinite'])} requests), left out of values and tables; "
                f"rescore in bfloat16 or float32, or pass --allow-nonfinite to use them",
                NonFiniteWarning,
                stacklevel=2,
            )
        return frame[~bad].reset_index(drop=True)

    def coalitions(self) -> set[str]:
        """The coalitions stored in readable parts (a damaged part's count as not scored)."""
        stored: set[str] = set()
        for part in self.parts():
            if part.name not in self._known:
                frame = self._read(part, columns=["coalition"])
                if frame is None:
                    continue
                self._known[part.name] = frozenset(frame["coalition"])
            stored |= self._known[part.name]
        return stored

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """The right to change the parts (append, compact, slim), one process at a time: an advisory
        `flock` on the store's `lock` file. It excludes writers on one machine; on NFS it may not
        exclude another machine's (give each machine its own --results folder)."""
        import fcntl

        with open(self.path / "lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read(self, part: Path, columns: list[str] | None = None) -> pd.DataFrame | None:
        try:
            frame = pd.read_parquet(part, columns=columns)
            if "coalition" not in frame:
                raise ValueError("no coalition column")
        except (OSError, ValueError, pa.ArrowException) as err:
            warnings.warn(
                f"damaged part {part} ({str(err).splitlines()[0][:120]}): its coalitions are left out and "
                f"will be scored again; `lsi store repair {self.path}` sets it aside",
                DamagedPartWarning,
                stacklevel=3,
            )
            return None
        return frame

    def append(self, rows: pd.DataFrame) -> Path | None:
        """Flush scored coalitions as one new part file, leaving out those another writer stored
        first (two runs on one store never store a coalition twice); None if nothing was new."""
        with self.writing():
            fresh = rows[~rows["coalition"].isin(self.coalitions())]
            return self._write_part(fresh) if len(fresh) else None

    def _write_part(self, rows: pd.DataFrame, level: int | None = None) -> Path:
        name = f"part-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.monotonic_ns()}.parquet"
        target = self.path / "parts" / name
        tmp = target.with_suffix(".tmp")
        table = pa.Table.from_pandas(rows, preserve_index=False)
        with _written(tmp, target):
            self._write_table(table, tmp, level)
        return target

    @staticmethod
    def _write_table(table: pa.Table, path: Path, level: int | None) -> None:
        floats = {
            field.name
            for field in table.schema
            if pa.types.is_list(field.type) and pa.types.is_floating(field.type.value_type)
        }
        pq.write_table(  # byte-stream split applies only where dictionary encoding is off
            table,
            path,
            compression="zstd",
            compression_level=level,
            use_dictionary=[name for name in table.column_names if name not in floats],
            use_byte_stream_split=[f"{name}.list.element" for name in floats] or False,
        )

    def compact(self) -> None:
        """Merge all parts into one file (fewer files to commit and read)."""
        if len(self.parts()) <= 1:
            return
        with self.writing():
            parts = self.parts()
            self._write_part(self.frame())
            for p in parts:
                p.unlink()

    def slim(self, margins: str | None = None) -> None:
        """Keep each coalition's per-document margins instead of its per-request log-likelihoods, in one
        part at a high zstd level: the log-likelihoods are most of a store's bytes, and nothing reads
        them but the margins. Like `compact`, the new part is complete before the old ones go, so an
        interruption loses nothing (slimming again finishes the job).

        `margins` is their encoding: "float32", or "float16" (half the bytes) for a store scored in
        bfloat16 or float16, whose margins already move by more than float16's rounding (at most 2^-11
        of a value) between two correct orders of the same computation; None keeps the store's
        recorded encoding (float32 for a store never slimmed)."""
        recorded = self.meta.get("slimmed", {}).get("doc_margin", "float32")
        wanted = margins or recorded
        if wanted not in MARGIN_ENCODINGS:
            raise UserError(f"unknown margin encoding {wanted!r}: use one of {sorted(MARGIN_ENCODINGS)}")
        if wanted == "float16" and self.meta["dtype"] not in ("bfloat16", "float16"):
            raise UserError(
                f"{self.path} was scored in {self.meta['dtype']}: float16 margins would drop precision its "
                "scores have; slim it with margins='float32'"
            )
        with self.writing():
            self._slim(wanted, recorded)

    def _slim(self, wanted: str, recorded: str) -> None:
        parts = self.parts()
        frame = self.frame()
        choices = self.meta.get("task_info", {}).get("output_type", "multiple_choice") == "multiple_choice"
        done = len(parts) == 1 and "loglik" not in frame and wanted == recorded
        if not parts or not choices or done:
            return  # margins are of choices: other tasks keep their log-likelihoods
        dtype = MARGIN_ENCODINGS[wanted]
        values = [row_margins(self.meta, row) for row in frame.to_dict("records")]
        largest = max((np.abs(v[np.isfinite(v)]).max(initial=0.0) for v in values), default=0.0)
        if largest > np.finfo(dtype).max:
            raise UserError(
                f"a margin of {largest:.4g} in {self.path} is beyond {wanted}'s range: slim it with "
                "margins='float32'"
            )
        values = pd.Series([v.astype(dtype) for v in values], index=frame.index, dtype=object)
        if "doc_margin" in frame:
            frame["doc_margin"] = values
        else:
            frame.insert(frame.columns.get_loc("loglik"), "doc_margin", values)
        self._write_part(frame.drop(columns="loglik", errors="ignore"), SLIM_ZSTD_LEVEL)
        for p in parts:
            p.unlink()
        self.meta = self.meta | {"slimmed": {"at": now(), "dropped": ["loglik"], "doc_margin": wanted}}
        self.save_meta()


def _check_same(stored: dict, wanted: dict, path: Path) -> None:
    for key in (*IDENTITY_KEYS, *LATER_IDENTITY_KEYS):
        if stored.get(key) != wanted.get(key):
            raise StoreMismatchError(
                f"the score store at {path} was made with a different {key} "
                f"({_short(stored.get(key))} vs {_short(wanted.get(key))}); use another --results folder "
                "or delete that store"
            )


def _short(value: object) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def write_atomic(target: Path, data: bytes) -> None:
    """Write `data` to `target` whole or not at all (see `_written`)."""
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    with _written(tmp, target):
        tmp.write_bytes(data)


@contextlib.contextmanager
def _written(tmp: Path, target: Path) -> Iterator[None]:
    """Around writing `tmp`: sync it, rename it to `target`, sync the folder, so that a crash leaves the
    whole file or none. If writing fails (a full disk), the partial temp file goes and nothing already
    stored is touched."""
    try:
        yield
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.errno == errno.ENOSPC:
            raise UserError(
                f"no space left on the device writing {target.name} in {target.parent}: free some space "
                "and run again; everything stored before is intact"
            ) from err
        raise
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
