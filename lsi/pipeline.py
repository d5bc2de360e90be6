"""One study cell, the unit every front end runs: make sure the coalitions are scored, then the
ablation table, the cornerstones, the Shapley estimate and the files written.

Notebooks 00 and 01, the study runner (through notebook 01), `lsi run` and the other commands call
these functions, so a cell's analysis is written once. The model loads only when a coalition the
cell needs is missing from the store: a finished cell reruns from the store alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import pandas as pd

from lsi import figures, style
from lsi.analysis import CornerstoneRule, ablation_table, cornerstones, removal_orders, summary_statistics
from lsi.choices import Backend, Value
from lsi.config import RunConfig
from lsi.errors import UserError
from lsi.estimators import Estimate, estimate, estimator_options, resolve_budget
from lsi.layer_game import LayerGame
from lsi.players import single_removals
from lsi.results import estimate_value, save_estimate, save_removal_curves
from lsi.store import ScoreStore
from lsi.values import chance_level

if TYPE_CHECKING:
    from lsi.scoring import Backend as ScoringBackend
    from lsi.scoring import Scorer


class LazyScorer:
    """The scorer of a configuration, built (model loaded, requests encoded) on first call only."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self._scorer: Scorer | None = None

    def __call__(self) -> Scorer:
        if self._scorer is None:
            self._scorer = build_scorer(self.config)
        return self._scorer

    @property
    def loaded(self) -> bool:
        return self._scorer is not None

    def close(self) -> None:
        """Stop the scorer's workers, if it was built."""
        if self._scorer is not None:
            self._scorer.close()


def build_scorer(config: RunConfig) -> Scorer:
    """Load the model and encode the task's requests (the slow part: seconds to minutes).

    With the Ray backend this process holds the model's structure only (no weights): the workers
    load it."""
    import torch

    from lsi.models import load_model, load_skeleton
    from lsi.scoring import Scorer
    from lsi.tasks import load_task

    if config.threads and config.backend is Backend.LOCAL:
        torch.set_num_threads(config.threads)
    # fails fast on an unknown task, before the model loads
    task = load_task(
        config.task,
        include_path=[config.include_path] if config.include_path else [],
        confirm_unsafe=config.confirm_run_unsafe_code,
    )
    if config.metric is not None and config.metric not in task.metric_names():
        known = ", ".join(task.metric_names())
        raise UserError(f"unknown --metric {config.metric!r} for {task.name}; its metrics: {known}")
    backend = None
    if config.backend is Backend.RAY:
        from lsi.cluster import connect

        session = connect(config.address)  # fails fast on a bad address or a missing Ray
        lm = load_skeleton(config.model, config.dtype.value, config.trust_remote_code)
        backend = functools.partial(_ray_backend, config, session)
    else:
        lm = load_model(
            config.model, config.dtype.value, config.device, trust_remote_code=config.trust_remote_code
        )
    return Scorer(
        lm,
        task,
        config.limit,
        config.granularity.value,
        config.results,
        batch_tokens=config.batch_tokens,
        max_rows=config.batch_size,
        backend=backend,
    )


def _ray_backend(config: RunConfig, session: tuple[Any, bool], scorer: Scorer) -> ScoringBackend:
    from lsi.cluster import RayBackend
    from lsi.jobs import ModelSource

    spec = Path(config.model).expanduser()
    source = ModelSource(
        str(spec.resolve()) if spec.exists() else config.model,  # workers may start in another folder
        config.dtype.value,
        config.granularity.value,
        tuple(p.name for p in scorer.players),
        scorer.lm.identity.weights_sha256,
        config.trust_remote_code,
    )
    return RayBackend(source, config, session)


def open_store(config: RunConfig, scorer: Callable[[], Scorer]) -> ScoreStore:
    """The configuration's store; created through the scorer (which loads the model) if absent."""
    path = config.store_path()
    if (path / "meta.json").exists():
        return ScoreStore.open(path)
    return scorer().store


def ensure_scored(
    store: ScoreStore, coalitions: Iterable[str], scorer: Callable[[], Scorer], progress: bool = True
) -> list[str]:
    """Score the coalitions the store lacks; returns them (empty: nothing ran, no model loaded)."""
    stored = store.coalitions()
    missing = [c for c in dict.fromkeys(coalitions) if c not in stored]
    if missing:
        scorer().scores(missing, progress=progress)
    return missing


def ablation_coalitions(n_players: int) -> list[str]:
    """The full model and every single-player removal."""
    return ["1" * n_players, *single_removals(n_players)]


def ablation(
    store: ScoreStore,
    scorer: Callable[[], Scorer],
    rule: CornerstoneRule | None = None,
    progress: bool = True,
    allow_nonfinite: bool = False,
    metric: str | None = None,
) -> pd.DataFrame:
    """The single-player ablation table with its cornerstones (by `rule`, or the default rule),
    scoring what the store lacks."""
    n_players = len(store.meta["players"])
    # A continuous value's floor is the empty model's value: score it too.
    empty = ["0" * n_players] if chance_level(store.meta, metric) is None else []
    ensure_scored(store, ablation_coalitions(n_players) + empty, scorer, progress)
    table = ablation_table(store, allow_nonfinite=allow_nonfinite, metric=metric)
    return cornerstones(table, rule or CornerstoneRule())


def shapley(
    config: RunConfig,
    store: ScoreStore,
    scorer: Callable[[], Scorer],
    players: Sequence[str] = (),
) -> tuple[Estimate, Path, dict]:
    """The configuration's Shapley estimate (over `players` only, the others always kept, if given),
    saved next to the store; returns the estimate, its file and the record written."""
    game = LayerGame(store, config.value.value, scorer, config.allow_nonfinite, config.metric)
    if players:
        unknown = [name for name in players if name not in game.names]
        if unknown:
            raise UserError(f"unknown players {', '.join(unknown)}; see `lsi players`")
        game = game.restricted([game.names.index(name) for name in players])
    budget = resolve_budget(config.estimator, config.budget, game.n_players, config.max_removed)
    options = estimator_options(config.estimator, config.parameters())
    result = estimate(game, config.estimator, budget, config.seed, config.bootstrap, **options)
    record = {
        "model": config.model,
        "task": config.task,
        "limit": config.limit,
        "dtype": config.dtype.value,
        "granularity": config.granularity.value,
        "value": estimate_value(config.value.value, config.metric),
        "metric": config.metric or store.meta["metric"],
        "restricted_to": list(players) or None,
    }
    path, written = save_estimate(store, result, record)
    return result, path, written


@dataclass
class CellResult:
    """What one cell produced: the tables to show and the files it wrote."""

    config: RunConfig
    store: ScoreStore
    ablation: pd.DataFrame  # with `cornerstone` and `gap_left`; attrs: full, chance, above_chance...
    estimate: Estimate
    statistics: dict
    files: list[Path] = field(default_factory=list)
    curves: dict[str, pd.DataFrame] | None = None
    model_loaded: bool = False

    @property
    def title(self) -> str:
        return self.store.meta["model"].get("title", self.config.model)

    @property
    def label(self) -> str:
        """Model, task, split, documents, metric, players and dtype: what a figure title names."""
        meta, config = self.store.meta, self.config
        return (
            f"{self.title} | {config.task} ({meta['split']}, {meta['n_docs']} docs, {meta['metric']}) | "
            f"{config.granularity.value} players | {config.dtype.value}"
        )

    def ablation_figure(self) -> plt.Figure:
        """The paper's single-player ablation figure for this cell."""
        return figures.ablation_grid(
            {self.config.task: self.ablation}, f"Single-player ablation: {self.label}", 1
        )

    def shapley_figure(self, width: float = style.PAGE_WIDTH) -> plt.Figure:
        """The estimate's values with their intervals, flagged where the model is not above chance."""
        est, noise = (
            self.estimate,
            "" if self.ablation.attrs["above_chance"] else " | full model NOT above chance",
        )
        title = f"{est.estimator} estimate, {est.evaluations} coalitions{noise}\n{self.label}"
        ylabel = f"Shapley value ({self.config.value.value})"
        return figures.shapley_figure(est.players, est.values, est.ci_low, est.ci_high, title, ylabel, width)

    def to_json(self) -> dict:
        """The cell as one JSON-ready object (what `lsi run --json` prints)."""
        flagged = self.ablation
        return {
            "config": self.config.parameters(),
            "store": str(self.store.path),
            "task": {"split": self.store.meta["split"], "metric": self.store.meta["metric"]},
            "n_docs": self.store.meta["n_docs"],
            "full": flagged.attrs["full"],
            "chance": flagged.attrs["chance"],
            "above_chance": flagged.attrs["above_chance"],
            "ablation": flagged.drop(columns=["kind", "block"]).to_dict("records"),
            "cornerstones": flagged.loc[flagged["cornerstone"], "player"].tolist(),
            "statistics": self.statistics,
            "estimate": self.estimate.to_dict(),
            "files": [str(path) for path in self.files],
            "model_loaded": self.model_loaded,
        }


def run_cell(config: RunConfig, progress: bool = True) -> CellResult:
    """Run (or resume) one cell: ablation and cornerstones, the estimate, optional removal curves."""
    scorer = LazyScorer(config)
    try:
        return _cell(config, scorer, progress)
    finally:
        scorer.close()


def _cell(config: RunConfig, scorer: LazyScorer, progress: bool) -> CellResult:
    store = open_store(config, scorer)
    flagged = ablation(store, scorer, None, progress, config.allow_nonfinite, config.metric)
    result, path, _ = shapley(config, store, scorer)
    statistics = summary_statistics(flagged, result.values if config.value is Value.SCORE else None)
    cell = CellResult(config, store, flagged, result, statistics, [path])
    if config.removal_curves:
        from lsi.removal import cumulative_removal

        orders = removal_orders(result.values, list(result.players), config.seed)
        cell.curves = {name: cumulative_removal(scorer(), order, progress) for name, order in orders.items()}
        cell.files.append(save_removal_curves(store, cell.curves, config.estimator, config.value.value))
    cell.model_loaded = scorer.loaded
    return cell
