"""Damaged stores: a part that is truncated, corrupted or malformed, or damaged metadata, is found and
named; the valid rows stay readable; only the lost coalitions are scored again; `lsi store check`
and `lsi store repair`. Writes are durable, and a full disk loses nothing already stored."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_stores import store_meta

from lsi import store as store_module
from lsi.cli import main
from lsi.errors import UserError
from lsi.pipeline import ensure_scored
from lsi.store import DamagedPartWarning, ScoreStore, StoreMismatchError
from lsi.store_check import check, repair

N_PLAYERS = 4


def _rows(coalitions: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "coalition": coalitions,
            "score": np.linspace(0.2, 0.8, len(coalitions)),
            "loglik": [np.arange(4, dtype=np.float32) - 9] * len(coalitions),
            "doc_acc_norm": [np.array([1, 0], dtype=np.int8)] * len(coalitions),
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> ScoreStore:
    """A store with two parts: 1111, 0111 (kept intact) and 1011, 1101 (the one the tests damage)."""
    documents = [{"gold": 0, "n_choices": 2, "choice_chars": [3, 4]}] * 2
    s = ScoreStore.open(tmp_path / "store", store_meta(N_PLAYERS, documents))
    s.append(_rows(["1111", "0111"]))
    s.append(_rows(["1011", "1101"]))
    return s


def _truncate(part: Path) -> None:
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])


def _corrupt(part: Path) -> None:
    data = bytearray(part.read_bytes())
    data[-12:-8] = b"\xff\xff\xff\x7f"  # the footer's length: the metadata cannot be found
    part.write_bytes(bytes(data))


def _empty(part: Path) -> None:
    part.write_bytes(b"")


def _no_coalitions(part: Path) -> None:
    _rows(["1011", "1101"]).drop(columns="coalition").to_parquet(part)


DAMAGE = {
    "truncated": _truncate,
    "corrupted": _corrupt,
    "empty": _empty,
    "no coalition column": _no_coalitions,
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_part_is_named_the_rest_stays_readable_and_only_its_coalitions_are_rescored(store, damage):
    damaged = store.parts()[1]
    DAMAGE[damage](damaged)
    with pytest.warns(DamagedPartWarning, match=f"damaged part {damaged}.*lsi store repair"):
        assert sorted(store.frame()["coalition"]) == ["0111", "1111"]
    with pytest.warns(DamagedPartWarning):
        asked: list[list[str]] = []

        class Scorer:
            def scores(self, coalitions: list[str], progress: bool = True) -> None:
                asked.append(list(coalitions))

        ensure_scored(store, ["1111", "0111", "1011", "1101"], Scorer, progress=False)
    assert asked == [["1011", "1101"]]  # what was lost, nothing more
    (problem,) = check(store.path)
    assert problem.path == damaged and problem.kind in ("unreadable", "schema")
    assert repair(store.path) == [damaged]
    assert (store.path / "damaged" / damaged.name).exists() and check(store.path) == []
    assert sorted(store.frame()["coalition"]) == ["0111", "1111"]  # no warning any more


def test_wrong_coalitions_duplicates_and_non_finite_values_are_reported(store):
    store.append(_rows(["111", "1111"]).assign(score=[0.5, np.nan]))
    kinds = sorted(p.kind for p in check(store.path))
    assert kinds == ["identity"]  # a malformed part is reported once, as what makes it unusable
    repair(store.path)
    # A duplicate as two writers made before appends took the store's lock (or a copied-in part).
    store._write_part(_rows(["1111"]).assign(score=[np.nan]))
    store.append(_rows(["0011"]).assign(loglik=[np.array([np.inf, 0, 0, 0], dtype=np.float32)]))
    problems = {p.kind: p.detail for p in check(store.path)}
    assert problems["duplicate"].startswith("1111 is also in")
    assert problems["non-finite"] in ("1 score(s)", "1 value(s) in loglik")
    assert sorted(p.kind for p in check(store.path)) == ["duplicate", "non-finite", "non-finite"]
    repair(store.path)  # merges the duplicate, keeping the first copy (finite); leaves the inf to be seen
    assert [(p.kind, p.detail) for p in check(store.path)] == [("non-finite", "1 value(s) in loglik")]


def test_merged_rows_from_before_the_nonfinite_column_check_clean(store):
    """Parts merged from writers with and without `nonfinite` hold nulls there: none recorded, not damage."""
    store.append(_rows(["0011", "0101"]).assign(nonfinite=pd.array([1, None], dtype="Int64")))
    store.append(_rows(["1001"]).assign(loglik=[np.array([np.inf, 0, 0, 0], dtype=np.float32)]))
    assert [(p.kind, p.detail) for p in check(store.path)] == [("non-finite", "1 value(s) in loglik")]


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", json.dumps({"format": 1}).encode()])
def test_damaged_metadata_is_named_with_the_fix(store, content):
    (store.path / "meta.json").write_bytes(content)
    with pytest.raises(StoreMismatchError, match=f"store metadata {store.path / 'meta.json'}.*restore it"):
        ScoreStore.open(store.path)
    (problem,) = check(store.path)
    assert problem.kind == "metadata"
    with pytest.raises(UserError, match="repair needs readable metadata"):
        repair(store.path)


def test_writes_sync_the_file_then_rename_then_sync_the_folder(store, monkeypatch):
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append("fsync folder" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync file")
        real_fsync(fd)

    def replace(src: os.PathLike, dst: os.PathLike) -> None:
        calls.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(store_module.os, "fsync", fsync)
    monkeypatch.setattr(store_module.os, "replace", replace)
    store.append(_rows(["0011"]))
    store.save_meta()
    assert calls == ["fsync file", "rename", "fsync folder"] * 2


def test_a_full_disk_loses_nothing_already_stored(store, monkeypatch):
    before = store.frame()

    def full(*args: object, **kwargs: object) -> None:
        Path(args[1]).write_bytes(b"PAR1 half a part")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module.ScoreStore, "_write_table", staticmethod(full))
    with pytest.raises(
        UserError, match="no space left on the device writing part-.*everything stored before"
    ):
        store.append(_rows(["0011"]))
    assert not list(store.path.rglob("*.tmp")) and len(store.parts()) == 2
    pd.testing.assert_frame_equal(store.frame(), before)


def test_the_command_checks_and_repairs(store, capsys):
    assert main(["store", "check", str(store.path.parent)]) == 0
    assert "1 store(s), 0 problem(s)" in capsys.readouterr().out
    _truncate(store.parts()[0])
    assert main(["store", "check", str(store.path)]) == 1
    assert "unreadable" in capsys.readouterr().out
    assert main(["store", "repair", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert "set aside:" in out and out.rstrip().endswith("1 store(s), 0 problem(s)")
