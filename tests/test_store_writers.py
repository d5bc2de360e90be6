"""Two processes writing one store: appends and compactions take turns, and no coalition is stored twice."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
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


def _claimer(path: str, coalitions: list[str], claimed, stop) -> None:  # noqa: ANN001 - events
    from lsi import claims

    claims.claim(ScoreStore.open(Path(path)), coalitions)
    claimed.set()
    stop.wait(120)


def test_a_claimed_coalition_is_left_to_its_writer_until_that_writer_is_gone(tmp_path: Path) -> None:
    from lsi import claims

    documents = [{"gold": 0, "n_choices": 2, "choice_chars": [1, 1]}]
    store = ScoreStore.open(tmp_path / "store", store_meta(6, documents))
    store.append(pd.DataFrame({"coalition": COALITIONS[:5], "score": [0.0] * 5}))
    context = multiprocessing.get_context("spawn")
    claimed, stop = context.Event(), context.Event()
    other = context.Process(target=_claimer, args=(str(tmp_path / "store"), COALITIONS[:20], claimed, stop))
    other.start()
    try:
        assert claimed.wait(60)
        assert claims.claim(store, COALITIONS) == COALITIONS[20:]  # neither stored nor claimed by the other
    finally:
        other.kill()
        other.join()
    assert claims.claim(store, COALITIONS) == COALITIONS[5:]  # the other is gone: its claims lapsed
    claims.release(store)
    assert not list((store.path / "claims").iterdir())


@pytest.mark.slow
def test_two_runs_on_one_store_both_finish_and_score_each_coalition_once(tmp_path: Path) -> None:
    """Two `lsi ablate` on one store at once: the first to claim scores, the other waits and reads."""
    command = [
        str(Path(sys.executable).parent / "lsi"), "ablate", "--task", "arc_easy", "--limit", "4",
        "--granularity", "block", "--dtype", "float32", "--results", str(tmp_path),
    ]  # fmt: skip
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [run.communicate(timeout=900) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    scored = ["arc_easy 31 coalitions" in err for _, err in outputs]  # the scoring progress bar
    assert scored.count(True) == 1, [err[-500:] for _, err in outputs]
    assert outputs[0][0].split("store:")[0] == outputs[1][0].split("store:")[0]  # the same table
    store = ScoreStore.open(tmp_path / "scores/smollm2-135m/arc_easy/block-float32-limit4")
    raw = pd.concat([pq.read_table(p).to_pandas() for p in store.parts()])
    assert len(raw) == 31 and raw["coalition"].is_unique
