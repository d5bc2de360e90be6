"""The torch-only job: its arrays round-trip, the planner covers every coalition on every batch exactly
once, its costs count the prefix tree's sharing, and split units reassemble into whole coalitions."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsi.engine import TokenRequest
from lsi.generation import GenerationRequest
from lsi.jobs import ScoringJob, Unit, UnitResult, _capped_chunks, executed_players, plan_units
from lsi.pipeline import ablation_coalitions
from lsi.scoring import UNIT_COALITIONS, UNIT_S, _Assembly, unit_cost_cap

REQUESTS = [TokenRequest((1, 2, 3), (4,)), TokenRequest((1, 2, 3), (5, 6)), TokenRequest((7,), (8, 9, 10))]


def test_a_job_round_trips_through_its_files(tmp_path: Path) -> None:
    job = ScoringJob.from_requests(REQUESTS, max_length=16, batch_tokens=32, max_rows=4)
    settings_ = job.save(tmp_path)
    again = ScoringJob.load(tmp_path, **settings_)
    assert again.requests() == REQUESTS and again.key == job.key
    assert ScoringJob.from_requests(REQUESTS[:2], 16, 32, 4).key != job.key


def test_a_generative_job_round_trips_with_its_generation_requests(tmp_path: Path) -> None:
    generation = [GenerationRequest((1, 2, 3), ("\n", "Q:"), 32), GenerationRequest((7,), ("</s>",), 8)]
    job = ScoringJob.from_requests(REQUESTS[:2], 16, 32, 4, generation=generation)
    again = ScoringJob.load(tmp_path, **job.save(tmp_path))
    assert again.generation == tuple(generation) and again.key == job.key
    assert ScoringJob.from_requests(REQUESTS[:2], 16, 32, 4).key != job.key


def test_executed_players_counts_shared_prefixes_once() -> None:
    assert executed_players(["111", "110"]) == 3  # the two share players 0 and 1
    assert executed_players(["011", "101"]) == 4  # player 2 runs on two different prefixes
    assert executed_players(["111"] * 2) == 3


@settings(max_examples=200, deadline=None)
@given(
    coalitions=st.lists(st.text("01", min_size=6, max_size=6), min_size=1, max_size=40, unique=True),
    batches=st.lists(st.integers(1, 500), min_size=1, max_size=12),
    workers=st.integers(1, 16),
)
def test_units_cover_every_coalition_on_every_batch_once(coalitions, batches, workers) -> None:
    units = plan_units(coalitions, batches, workers, chunk_size=8)
    covered = Counter((c, b) for u in units for c in u.coalitions for b in u.batches)
    assert set(covered) == {(c, b) for c in coalitions for b in range(len(batches))}
    assert set(covered.values()) == {1}
    assert [u.cost for u in units] == sorted((u.cost for u in units), reverse=True)
    if workers == 1:
        assert all(u.batches == tuple(range(len(batches))) for u in units)
    else:  # batches are split before coalitions: a batch group keeps the prefix tree's sharing
        assert len({u.batches for u in units}) == min(len(batches), 4 * workers)
        assert len(units) >= min(4 * workers, len(batches) * len(coalitions))


def test_one_worker_keeps_chunks_of_adjacent_coalitions() -> None:
    coalitions = [format(i, "06b") for i in range(64)]
    units = plan_units(coalitions, [10, 10], workers=1, chunk_size=32)
    assert len(units) == 2 and {len(u.coalitions) for u in units} == {32}
    for unit in units:  # sorted: each chunk is one half of the trie
        assert len({c[0] for c in unit.coalitions}) == 1


def test_split_units_reassemble_whole_coalitions() -> None:
    parts = [Unit(("11", "10"), (0,)), Unit(("11", "10"), (1,))]
    assembly = _Assembly(parts, n_requests=4)
    first = UnitResult(
        parts[0], np.array([0, 2]), np.array([[1.0, 2.0], [3.0, 4.0]]), np.ones((2, 2), bool), 2.0, "cpu"
    )
    assert assembly.add(first) == []  # half of each coalition's requests
    second = UnitResult(
        parts[1], np.array([1, 3]), np.array([[5.0, 6.0], [7.0, 8.0]]), np.zeros((2, 2), bool), 4.0, "cpu"
    )
    done = {c: (ll, gr, s) for c, ll, gr, s in assembly.add(second)}
    np.testing.assert_array_equal(done["11"][0], [1.0, 5.0, 2.0, 6.0])
    np.testing.assert_array_equal(done["10"][1], [True, False, True, False])
    assert done["10"][2] == pytest.approx(3.0)  # each coalition's share of both units' time


@settings(max_examples=200, deadline=None)
@given(
    coalitions=st.lists(st.text("01", min_size=6, max_size=6), min_size=1, max_size=40, unique=True),
    batches=st.lists(st.integers(1, 500), min_size=1, max_size=6),
    workers=st.integers(1, 4),
    max_cost=st.floats(1, 50_000),
)
def test_a_cost_cap_bounds_every_unit_that_a_single_coalition_allows(coalitions, batches, workers, max_cost):
    units = plan_units(coalitions, batches, workers, chunk_size=32, max_cost=max_cost)
    assert all(u.cost <= max_cost or len(u.coalitions) == 1 for u in units)
    covered = Counter((c, b) for u in units for c in u.coalitions for b in u.batches)
    assert set(covered.values()) == {1} and len(covered) == len(coalitions) * len(batches)


@pytest.mark.parametrize("seconds", [2.0, 300.0])  # one coalition alone: SmolLM2, and a 1.5B model on a CPU
def test_a_unit_holds_two_minutes_or_four_slow_coalitions_that_share_their_prefixes(seconds) -> None:
    n, batches = 56, [4096, 4096, 2048]
    ablation = ablation_coalitions(n)
    rate = seconds / ((n + 1) * sum(batches))  # seconds per unit of cost, the full model alone
    cap = unit_cost_cap(ablation, batches, rate)
    units = plan_units(ablation, batches, 1, chunk_size=32, max_cost=cap)
    assert max(u.cost * rate for u in units) <= max(UNIT_S, UNIT_COALITIONS * seconds) + 1e-9
    if seconds * UNIT_COALITIONS <= UNIT_S:
        assert cap * rate == pytest.approx(UNIT_S)
        return
    # A cap of UNIT_S alone would give one coalition per unit, sharing nothing.
    alone = plan_units(ablation, batches, 1, chunk_size=32, max_cost=UNIT_S / rate)
    assert {len(u.coalitions) for u in alone} == {1}
    assert min(len(u.coalitions) for u in units) > 1
    assert sum(u.cost for u in alone) / sum(u.cost for u in units) > 1.5


@settings(max_examples=300, deadline=None)
@given(
    coalitions=st.lists(st.text("01", min_size=8, max_size=8), min_size=1, max_size=40, unique=True),
    size=st.integers(1, 12),
    max_cost=st.integers(1, 120),
)
def test_capped_chunks_are_full_up_to_the_cap_the_prefix_tree_counts(coalitions, size, max_cost) -> None:
    """Each chunk costs what `executed_players` counts, within the cap unless alone, and the next
    coalition would not have fitted: its incremental count is the tree's."""
    ordered = sorted(coalitions, reverse=True)
    chunks = _capped_chunks(ordered, size, max_cost, tokens=1)
    assert [c for chunk in chunks for c in chunk] == ordered
    for chunk, following in zip(chunks, [*chunks[1:], None], strict=True):
        cost = executed_players(chunk) + len(chunk)
        assert len(chunk) <= size and (cost <= max_cost or len(chunk) == 1)
        if following is not None and len(chunk) < size:
            grown = [*chunk, following[0]]
            assert executed_players(grown) + len(grown) > max_cost
