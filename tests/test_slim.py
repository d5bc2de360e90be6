"""Slimmed stores: per-document margins replace the log-likelihoods, and every reader still works,
on synthetic stores and on every committed one."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from synthetic_stores import store_meta

from lsi import store as store_module
from lsi.errors import UserError
from lsi.game import all_coalitions, bit_strings
from lsi.layer_game import LayerGame, margins
from lsi.store import IDENTITY_KEYS, ScoreStore
from lsi.values import document_values, metrics_of

ROOT = Path(__file__).resolve().parent.parent
COMMITTED_ALL = sorted(p.parent for p in (ROOT / "results" / "scores").glob("*/*/*/meta.json"))


def _has_choices(store: Path) -> bool:
    info = json.loads((store / "meta.json").read_text()).get("task_info", {})
    return info.get("output_type", "multiple_choice") == "multiple_choice"


COMMITTED = [p for p in COMMITTED_ALL if _has_choices(p)]  # the margins and slimming are of choices
OTHER_TASKS = [p for p in COMMITTED_ALL if not _has_choices(p)]
N_PLAYERS, N_DOCS = 3, 30


def _meta(rng: np.random.Generator) -> dict:
    """A piqa-like layout with 2- and 3-choice documents, scored by acc_norm."""
    documents = []
    for i in range(N_DOCS):
        n = 2 + i % 2
        documents.append(
            {"gold": int(rng.integers(n)), "n_choices": n, "choice_chars": rng.integers(5, 40, n).tolist()}
        )
    return store_meta(N_PLAYERS, documents)


def _row(meta: dict, coalition: str, rng: np.random.Generator) -> dict:
    """A scored coalition as `Scorer._row` writes it, with random log-likelihoods."""
    n_requests = sum(doc["n_choices"] for doc in meta["documents"])
    loglik = rng.normal(-30, 8, n_requests).astype(np.float32)
    correct = (margins(meta, loglik) > 0).astype(np.int8)
    return {
        "coalition": coalition,
        "n_kept": coalition.count("1"),
        "acc": float(rng.random()),
        "acc_norm": float(correct.mean()),
        "score": float(correct.mean()),
        "near_ties": int(rng.integers(3)),
        "loglik": loglik,
        "doc_acc": rng.integers(0, 2, len(correct)).astype(np.int8),
        "doc_acc_norm": correct,
        "seconds": float(rng.random()),
        "scored_at": "2026-01-01T00:00:00+00:00",
        "device": "cpu",
    }


@pytest.fixture
def store(tmp_path: Path) -> ScoreStore:
    """Every coalition of 3 players but the empty one, flushed in two parts as a run would."""
    rng = np.random.default_rng(0)
    s = ScoreStore.open(tmp_path / "store", _meta(rng))
    rows = [_row(s.meta, c, rng) for c in bit_strings(all_coalitions(N_PLAYERS)[1:])]
    s.append(pd.DataFrame(rows[:4]))
    s.append(pd.DataFrame(rows[4:]))
    return s


def _values(store: ScoreStore, kind: str) -> np.ndarray:
    """Per-document values of the stored coalitions, in a fixed order."""
    return LayerGame(store, kind).doc_values(all_coalitions(N_PLAYERS)[1:])


def test_slim_keeps_every_other_column_and_the_game_values(store):
    assert "\n" not in (store.path / "meta.json").read_text()  # written compact from creation on
    before = store.frame()
    score, margin = _values(store, "score"), _values(store, "margin")
    identity = {key: store.meta[key] for key in IDENTITY_KEYS}
    store.slim()
    parts = list((store.path / "parts").glob("*.parquet"))
    assert len(parts) == 1 and not list((store.path / "parts").glob("*.tmp"))
    after = store.frame()
    assert "loglik" not in after and list(after.columns) == [
        "doc_margin" if c == "loglik" else c for c in before.columns
    ]
    pd.testing.assert_frame_equal(after.drop(columns="doc_margin"), before.drop(columns="loglik"))
    for row, ll in zip(after.to_dict("records"), before["loglik"], strict=True):
        assert row["doc_margin"].dtype == np.float32
        assert np.array_equal(row["doc_margin"], margins(store.meta, ll).astype(np.float32))
    assert np.array_equal(_values(store, "score"), score)
    np.testing.assert_allclose(_values(store, "margin"), margin, rtol=1e-6)
    # meta.json: compact, marked slimmed, identity unchanged; a reopened store still matches its runs
    text = (store.path / "meta.json").read_text()
    meta = json.loads(text)
    assert "\n" not in text and meta["slimmed"]["dropped"] == ["loglik"] and "slimmed" not in IDENTITY_KEYS
    assert {key: meta[key] for key in IDENTITY_KEYS} == identity
    assert ScoreStore.open(store.path, {k: v for k, v in meta.items() if k != "slimmed"}).meta == meta
    # the margins are stored as the log-likelihoods were: zstd over byte-stream-split floats
    group = pq.ParquetFile(parts[0]).metadata.row_group(0)
    columns = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
    assert "BYTE_STREAM_SPLIT" in columns["doc_margin.list.element"].encodings
    assert all(column.compression == "ZSTD" for column in columns.values())


def test_a_slimmed_store_takes_new_rows_with_log_likelihoods(store):
    loglik = store.frame().set_index("coalition")["loglik"]
    store.slim()
    rng = np.random.default_rng(1)
    empty, again = _row(store.meta, "000", rng), _row(store.meta, "111", rng)
    store.append(pd.DataFrame([empty, again]))  # "111" scored twice: the first (slimmed) copy wins
    mixed = store.frame().set_index("coalition")
    assert len(mixed) == len(loglik) + 1
    assert np.ndim(mixed.at["000", "doc_margin"]) == 0 and np.ndim(mixed.at["111", "loglik"]) == 0
    game = LayerGame(store, "margin").doc_values(np.array([[0, 0, 0], [1, 1, 1]], dtype=bool))
    assert np.array_equal(game[0], margins(store.meta, empty["loglik"]))
    np.testing.assert_allclose(game[1], margins(store.meta, loglik["111"]), rtol=1e-6)
    store.slim()  # folds the new row in
    slimmed = store.frame().set_index("coalition")
    assert "loglik" not in slimmed and len(list((store.path / "parts").glob("*.parquet"))) == 1
    assert np.array_equal(
        slimmed.at["000", "doc_margin"], margins(store.meta, empty["loglik"]).astype(np.float32)
    )
    store.slim()  # nothing left to do
    pd.testing.assert_frame_equal(store.frame().set_index("coalition"), slimmed)


def test_interrupted_slim_loses_nothing(store, monkeypatch):
    before = store.frame()
    parts = sorted((store.path / "parts").glob("*.parquet"))
    meta_text = (store.path / "meta.json").read_text()

    def torn_write(table, where, **kwargs):
        Path(where).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(store_module.pq, "write_table", torn_write)
    with pytest.raises(OSError, match="disk full"):
        store.slim()
    assert sorted((store.path / "parts").glob("*.parquet")) == parts
    assert (store.path / "meta.json").read_text() == meta_text
    reopened = ScoreStore.open(store.path)
    pd.testing.assert_frame_equal(reopened.frame(), before)
    monkeypatch.undo()
    reopened.slim()
    assert "slimmed" in reopened.meta and len(reopened.frame()) == len(before)


def test_float16_margins_for_a_store_scored_in_16_bit_floats(store):
    """Half the margins' bytes, each within float16's rounding of the float32 one; the scores untouched;
    the encoding recorded and kept when the store is slimmed again."""
    score, margin = _values(store, "score"), _values(store, "margin")
    with pytest.raises(UserError, match="scored in float32.*margins='float32'"):
        store.slim(margins="float16")
    store.meta["dtype"] = "bfloat16"
    with pytest.raises(UserError, match="unknown margin encoding 'int8'"):
        store.slim(margins="int8")
    store.slim(margins="float16")
    assert store.meta["slimmed"]["doc_margin"] == "float16"
    assert all(m.dtype == np.float16 for m in store.frame()["doc_margin"])
    assert np.array_equal(_values(store, "score"), score)
    np.testing.assert_allclose(_values(store, "margin"), margin, rtol=2.0**-11)
    assert not np.array_equal(_values(store, "margin"), margin)  # it did round
    rng = np.random.default_rng(2)
    store.append(pd.DataFrame([_row(store.meta, "000", rng)]))
    ScoreStore.open(store.path).slim()  # the recorded encoding, for the new row too
    again = ScoreStore.open(store.path)
    assert again.meta["slimmed"]["doc_margin"] == "float16"
    assert all(m.dtype == np.float16 for m in again.frame()["doc_margin"])
    again.slim(margins="float32")  # back: the float16 values, widened
    widened = ScoreStore.open(store.path).frame()
    assert all(m.dtype == np.float32 for m in widened["doc_margin"])


def test_float16_margins_beyond_its_range_are_refused(store):
    store.meta["dtype"] = "bfloat16"
    frame = store.frame()
    frame.at[0, "loglik"] = np.where(np.arange(len(frame.at[0, "loglik"])) == 0, 1e8, -1e8).astype(np.float32)
    for part in store.parts():
        part.unlink()
    store.append(frame)
    with pytest.raises(UserError, match="beyond float16's range"):
        store.slim(margins="float16")
    assert "slimmed" not in store.meta and "loglik" in store.frame()


def test_the_store_path_needs_no_model_libraries():
    """The store, its margins and the notebook helper run where only pandas is installed."""
    code = (
        "import sys, lsi.store, lsi.margins, lsi.notebook_outputs; "
        "print(sorted({'torch', 'transformers', 'lm_eval'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("committed", COMMITTED, ids=lambda p: "/".join(p.parts[-3:]))
def test_every_committed_store_reads_and_takes_a_new_coalition(committed, tmp_path):
    """Stores written today stay readable and appendable, slimmed or not."""
    path = tmp_path / "store"
    shutil.copytree(committed / "parts", path / "parts")
    shutil.copy(committed / "meta.json", path / "meta.json")
    store = ScoreStore.open(path)
    meta = store.meta
    frame = store.frame()
    n_docs = len(meta["documents"])
    assert len(frame) and all(len(d) == n_docs for d in frame[f"doc_{meta['metric']}"])
    stored = set(frame.coalition)
    rng = np.random.default_rng(0)
    coalition = next(
        c
        for c in ("".join(rng.choice(["0", "1"], len(meta["players"]))) for _ in range(100))
        if c not in stored
    )
    row = _row(meta, coalition, rng)
    if meta["metric"] == "acc":
        row |= {"acc_norm": None, "doc_acc_norm": None, "doc_acc": row["doc_acc_norm"]}
    store.append(pd.DataFrame([row]))
    back = ScoreStore.open(path).frame().set_index("coalition")
    assert len(back) == len(frame) + 1
    assert np.array_equal(back.at[coalition, "loglik"], row["loglik"])
    kept = np.array([[c == "1" for c in key] for key in (frame.coalition.iloc[0], coalition)])
    score, margin = LayerGame(store, "score").doc_values(kept), LayerGame(store, "margin").doc_values(kept)
    assert np.array_equal(score[1], row[f"doc_{meta['metric']}"])
    assert np.array_equal(margin[1], margins(meta, row["loglik"])) and np.isfinite(margin[0]).all()


@pytest.mark.parametrize("committed", OTHER_TASKS, ids=lambda p: "/".join(p.parts[-3:]))
def test_every_committed_store_of_a_task_without_choices_gives_its_values(committed):
    """Stores of log-likelihood, perplexity and generative tasks: every row gives per-document values
    for every metric it keeps, whose mean is the row's score for the task's own metric."""
    store = ScoreStore.open(committed)
    meta = store.meta
    for row in store.frame().to_dict("records"):
        values = document_values(meta, row)
        assert values.shape == (meta["n_docs"],) and values.mean() == pytest.approx(row["score"], rel=1e-5)
        for metric in metrics_of(meta, row):
            assert document_values(meta, row, metric).shape == (meta["n_docs"],)
