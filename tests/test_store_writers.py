"""Two processes writing one store: appends and compactions take turns, and no coalition is stored twice."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from synthetic_stores import store_meta

from lsi.store import ScoreStore

COALITIONS = [format(i, "06b") for i in range(40)]


def _writer(path: str, order: list[str], start) -> None:  # noqa: ANN001 - a multiprocessing.Event
    """Append the coalitions a few at a time, as a scorer does, compacting now and then."""
    store = ScoreStore.open(Path(path))
    start.wait()
    for at in range(0, len(order), 3):
        chunk = order[at : at + 3]
        store.append(pd.DataFrame({"coalition": chunk, "score": [float(c.count("1")) for c in chunk]}))
        if at % 12 == 0:
            store.compact()


def test_two_writers_store_each_coalition_once(tmp_path: Path) -> None:
    documents = [{"gold": 0, "n_choices": 2, "choice_chars": [1, 1]}]
    ScoreStore.open(tmp_path / "store", store_meta(6, documents))
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    writers = [
        context.Process(target=_writer, args=(str(tmp_path / "store"), order, start))
        for order in (COALITIONS, COALITIONS[::-1])
    ]
    for writer in writers:
        writer.start()
    start.set()
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0
    store = ScoreStore.open(tmp_path / "store")
    raw = pd.concat([pq.read_table(p).to_pandas() for p in store.parts()])  # not deduplicated by frame()
    assert sorted(raw["coalition"]) == sorted(COALITIONS)


def test_an_append_of_stored_coalitions_writes_nothing(tmp_path: Path) -> None:
    documents = [{"gold": 0, "n_choices": 2, "choice_chars": [1, 1]}]
    store = ScoreStore.open(tmp_path / "store", store_meta(6, documents))
    assert store.append(pd.DataFrame({"coalition": COALITIONS[:3], "score": [0.0] * 3})) is not None
    assert store.append(pd.DataFrame({"coalition": COALITIONS[:3], "score": [1.0] * 3})) is None
    assert len(store.parts()) == 1 and store.frame()["score"].tolist() == [0.0] * 3
