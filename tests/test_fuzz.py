"""Fuzzed input to the parse-and-validate layer (no model loads): the typed configuration, player
lists, study grids and the command line. Valid input validates; invalid input is one clear line
(a UserError, or exit status 2 from the command line), never a traceback."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsi.cli import main
from lsi.config import DEFAULTS, RunConfig, field_names
from lsi.errors import UserError
from lsi.players import Player, parse_players
from lsi.study import SETTING_KEYS, TOP_KEYS, load_grid

FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5000),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["block", "sublayer", "bfloat16", "float32", "score", "margin", "window", "kernelshap"]),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3))
KEYS = st.one_of(st.sampled_from(field_names()), st.text(max_size=8))


def _one_line(err: Exception) -> None:
    message = str(err)
    assert message and "\n" not in message, f"not one line: {message!r}"


@FUZZ
@given(st.dictionaries(KEYS, VALUES, max_size=6))
def test_configuration(values: dict) -> None:
    try:
        config = RunConfig.from_mapping(values)
    except UserError as err:
        _one_line(err)
        return
    assert RunConfig.from_mapping(config.parameters()) == config  # what validates round-trips


def _players(n_blocks: int, granularity: str) -> tuple[Player, ...]:
    kinds = ("block",) if granularity == "block" else ("attn", "mlp")
    names = [(f"{kind}.{b}", kind, b) for b in range(n_blocks) for kind in kinds]
    return tuple(Player(name, kind, block, i) for i, (name, kind, block) in enumerate(names))


NAMES = st.one_of(
    st.builds(
        lambda k, b: f"{k}.{b}", st.sampled_from(["block", "attn", "mlp", "moe", "ffn"]), st.integers(-2, 40)
    ),
    st.text(max_size=10),
)


@FUZZ
@given(st.integers(1, 30), st.sampled_from(["block", "sublayer"]), st.lists(NAMES, max_size=5))
def test_player_lists(n_blocks: int, granularity: str, names: list[str]) -> None:
    players = _players(n_blocks, granularity)
    try:
        found = parse_players(names, players)
    except UserError as err:
        _one_line(err)
        return
    assert [p.name for p in found] == [n.strip() for n in names if n.strip()]


SETTINGS = st.dictionaries(st.sampled_from([*SETTING_KEYS, "sed"]), VALUES, max_size=3)
GRIDS = st.one_of(
    st.text(max_size=40),  # not YAML, or YAML that is not a mapping
    st.dictionaries(
        st.one_of(st.sampled_from(TOP_KEYS), st.text(max_size=6)),
        st.one_of(
            VALUES,
            st.lists(st.sampled_from(["smollm2-135m", "arc_easy", "piqa", "m"]), max_size=3),
            SETTINGS,
            st.lists(SETTINGS, max_size=3),
        ),
        max_size=6,
    ),
)


@FUZZ
@given(GRIDS)
def test_study_grids(tmp_path: Path, grid: object) -> None:
    path = tmp_path / "studies" / "grid.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(grid if isinstance(grid, str) else yaml.safe_dump(grid))
    try:
        study = load_grid(path)
    except UserError as err:
        _one_line(err)
        return
    assert all(RunConfig.from_mapping(cell.parameters) for cell in study.cells)


OPTIONS = st.lists(
    st.one_of(
        st.sampled_from(["--" + name.replace("_", "-") for name in field_names()] + ["--results", "--json"]),
        st.text(max_size=8),
        st.integers(-3, 300).map(str),
    ),
    max_size=8,
)


@FUZZ
@given(OPTIONS)
def test_command_line(tmp_path: Path, argv: list[str]) -> None:
    """`lsi scores` reads a store and never loads a model: every outcome is 0, or 2 with one line."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(["scores", *argv, "--results", str(tmp_path / "none")])
        except SystemExit as exit_:  # argparse: usage, then one error line
            code = exit_.code
    assert code == 2
    assert err.getvalue().strip().split("\n")[-1].startswith(("lsi: error:", "lsi scores: error:"))
    assert "Traceback" not in err.getvalue()


def test_the_defaults_validate() -> None:
    assert RunConfig.from_mapping(DEFAULTS.parameters()) == DEFAULTS
    with pytest.raises(UserError):
        RunConfig.from_mapping({"limit": 0})
