"""The score store: appends survive interruption, reads with pandas alone, refuses foreign stores."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from lsi.store import ScoreStore, StoreMismatchError, store_dir

META = {
    "format": 1,
    "weights_sha256": "abc",
    "dtype": "float32",
    "task": "arc_easy",
    "split": "validation",
    "limit": 10,
    "granularity": "block",
    "players": ["block.0", "block.1"],
    "lm_eval": "0.4.13",
}


def _rows(coalitions, score):
    return pd.DataFrame(
        {
            "coalition": coalitions,
            "score": [score] * len(coalitions),
            "loglik": [np.arange(3, dtype=np.float32)] * len(coalitions),
        }
    )


def test_append_read_and_first_copy_wins(tmp_path):
    store = ScoreStore.open(tmp_path / "s", META)
    store.append(_rows(["11", "10"], 0.5))
    store.append(_rows(["10", "00"], 0.9))
    frame = store.frame()
    assert sorted(frame.coalition) == ["00", "10", "11"]
    assert frame.set_index("coalition").loc["10", "score"] == 0.5
    assert store.coalitions() == {"11", "10", "00"}
    # pandas alone reads the parts folder, and the metadata is plain JSON
    raw = pd.read_parquet(tmp_path / "s" / "parts")
    assert len(raw) == 3 and list(raw.loglik.iloc[0]) == [0.0, 1.0, 2.0]
    assert json.loads((tmp_path / "s" / "meta.json").read_text())["task"] == "arc_easy"


def test_log_likelihoods_are_stored_exactly_in_the_compact_encoding(tmp_path):
    """Float lists (the per-request log-likelihoods, most of a store's bytes) are written zstd over
    byte-stream-split values: bit-exact on reading, and plain pandas still reads the folder."""
    rng = np.random.default_rng(0)
    lists = [rng.normal(-20, 5, size=500).astype(np.float32) for _ in range(4)]
    rows = pd.DataFrame({"coalition": ["11", "10", "01", "00"], "loglik": lists})
    path = ScoreStore.open(tmp_path / "s", META).append(rows)
    columns = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {columns.column(i).path_in_schema: columns.column(i).encodings for i in range(2)}
    assert "BYTE_STREAM_SPLIT" in encodings["loglik.list.element"]
    assert all(columns.column(i).compression == "ZSTD" for i in range(2))
    back = pd.read_parquet(tmp_path / "s" / "parts")
    assert all(np.asarray(b).tobytes() == a.tobytes() for a, b in zip(lists, back["loglik"], strict=True))


def test_interrupted_write_leaves_no_torn_part(tmp_path):
    store = ScoreStore.open(tmp_path / "s", META)
    store.append(_rows(["11"], 0.5))
    (tmp_path / "s" / "parts" / "part-x.tmp").write_bytes(b"half a file")  # what a kill mid-write leaves
    assert store.coalitions() == {"11"}
    reopened = ScoreStore.open(tmp_path / "s", META)
    assert list(reopened.frame().coalition) == ["11"]


def test_compact_merges_parts(tmp_path):
    store = ScoreStore.open(tmp_path / "s", META)
    for c in ["11", "10", "01"]:
        store.append(_rows([c], 0.1))
    store.compact()
    assert len(list((tmp_path / "s" / "parts").glob("*.parquet"))) == 1
    assert store.coalitions() == {"11", "10", "01"}


@pytest.mark.parametrize(
    ("key", "value"), [("weights_sha256", "def"), ("dtype", "bfloat16"), ("limit", 20), ("task", "piqa")]
)
def test_foreign_store_is_refused(tmp_path, key, value):
    ScoreStore.open(tmp_path / "s", META)
    with pytest.raises(StoreMismatchError, match=f"different {key}"):
        ScoreStore.open(tmp_path / "s", META | {key: value})


def test_missing_and_unreadable_stores(tmp_path):
    with pytest.raises(FileNotFoundError, match="no score store"):
        ScoreStore.open(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "meta.json").write_text("{not json")
    with pytest.raises(StoreMismatchError, match="unreadable store metadata"):
        ScoreStore.open(tmp_path / "bad")


def test_store_dir_separates_configurations(tmp_path):
    a = store_dir(tmp_path, "smollm2-135m", "arc_easy", "block", "float32", 100)
    b = store_dir(tmp_path, "smollm2-135m", "arc_easy", "block", "bfloat16", 100)
    c = store_dir(tmp_path, "/models/x.gguf", "arc_easy", "block", "float32", None)
    assert len({a, b, c}) == 3 and c.name.endswith("limitall") and "/" not in c.parent.parent.parent.name
