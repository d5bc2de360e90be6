"""The one typed configuration of a run: which store, which game, which estimate, on what hardware.

The command line, the study grids, the notebooks' `parameters` cells and the store path all come
from `RunConfig`; its choice lists are the enums of `lsi.choices`, defined once. Later options (a
backend, task fields, safety flags) become fields of this configuration, not parallel lists.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import functools
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsi.choices import Backend, DType, Granularity, Value
from lsi.errors import UserError

# Which fields each part of the pipeline reads; a command offers the fields of the parts it runs.
STORE, GAME, ESTIMATE, CELL, RUNTIME = "store", "game", "estimate", "cell", "runtime"


def _option(default: Any, help: str, group: str, *, flag: str | None = None, least: int | None = None) -> Any:
    """A field with what the command line needs: help, group, flag (if not --name), least integer."""
    return field(default=default, metadata={"help": help, "group": group, "flag": flag, "least": least})


@dataclass(frozen=True)
class RunConfig:
    """One (model, task, setting) cell of a study, and how to run it."""

    model: str = _option("smollm2-135m", "embedded name, .gguf file, checkpoint folder or hub id", STORE)
    task: str = _option("arc_easy", "lm-eval task name (`lsi tasks`)", STORE)
    granularity: Granularity = _option(Granularity.SUBLAYER, "whole blocks, or attention and FFN", STORE)
    limit: int | None = _option(None, "lm-eval limit: the first N documents (per subtask)", STORE, least=1)
    dtype: DType = _option(
        DType.BFLOAT16, "weights and activations dtype (auto: bfloat16 where the device has it)", STORE
    )
    results_dir: str = _option("results", "folder holding the score stores", STORE, flag="--results")
    include_path: str | None = _option(
        None, "folders of your own lm-eval task YAMLs, ':'-separated (lm-eval's --include_path)", STORE
    )
    value: Value = _option(Value.SCORE, "the task's metric, or the gold log-likelihood margin", GAME)
    metric: str | None = _option(
        None,
        "the value's metric: METRIC[,FILTER] as lm-eval names it, or gold_loglik (default: the task's)",
        GAME,
    )
    allow_nonfinite: bool = _option(
        False, "use coalitions with non-finite log-likelihoods (left out by default)", GAME
    )
    estimator: str = _option("window", "window (the paper's), exact, permutation, kernelshap, ...", ESTIMATE)
    budget: int | None = _option(
        None, "distinct coalitions for sampling estimators (default: window's cost)", ESTIMATE, least=1
    )
    max_removed: int = _option(3, "window: the longest removed window (N_lim)", ESTIMATE, least=1)
    seed: int = _option(0, "seed of sampling estimators", ESTIMATE, least=0)
    bootstrap: int = _option(200, "document resamples for the 95%% intervals", ESTIMATE, least=0)
    removal_curves: bool = _option(False, "also remove players one by one in the estimate's orders", CELL)
    device: str = _option("cpu", "torch device", RUNTIME)
    batch_size: int = _option(64, "most packed rows per forward batch", RUNTIME, least=1)
    batch_tokens: int = _option(4096, "most tokens (with padding) per forward batch", RUNTIME, least=1)
    threads: int | None = _option(
        None, "torch CPU threads (default: torch's choice; a Ray CPU worker's: 1)", RUNTIME, least=1
    )
    trust_remote_code: bool = _option(
        False, "run the Python code a checkpoint ships (auto_map); read it first", RUNTIME
    )
    confirm_run_unsafe_code: bool = _option(
        False, "run a task marked unsafe_code (it executes code the model writes); read it first", RUNTIME
    )
    backend: Backend = _option(Backend.LOCAL, "run forward passes here, or on Ray workers", RUNTIME)
    address: str | None = _option(
        None, "ray: the cluster to join ('auto' or host:port; default: start a local instance)", RUNTIME
    )
    workers: int | None = _option(
        None, "ray: workers (default: one per GPU, else the CPUs / --threads)", RUNTIME, least=1
    )
    gpus_per_worker: int | None = _option(
        None, "ray: GPUs per worker, >1 splits the model over them (default: 1 if any)", RUNTIME, least=0
    )

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            object.__setattr__(self, spec.name, _checked(spec, getattr(self, spec.name)))
        from lsi.estimators import get_estimator

        get_estimator(self.estimator)
        if self.dtype is DType.AUTO:
            from lsi.hardware import resolve_dtype

            object.__setattr__(self, "dtype", resolve_dtype(self.dtype, self.device))
        if self.backend is Backend.LOCAL:
            ray_only = [
                name for name in ("address", "workers", "gpus_per_worker") if getattr(self, name) is not None
            ]
            if ray_only:
                shown = ", ".join("--" + name.replace("_", "-") for name in ray_only)
                raise UserError(f"{shown} set with the local backend: add --backend ray, or drop them")

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> RunConfig:
        """From plain values (a grid's YAML, papermill parameters); unknown keys are an error."""
        unknown = sorted(set(values) - set(field_names()))
        if unknown:
            shown = ", ".join(repr(key) for key in unknown)
            raise UserError(f"unknown option(s) {shown}; allowed: {', '.join(field_names())}")
        return cls(**values)

    @classmethod
    def from_parameters(cls, namespace: Mapping[str, object]) -> RunConfig:
        """From a namespace holding the fields by name among other names (a notebook's globals())."""
        return cls.from_mapping({name: namespace[name] for name in field_names() if name in namespace})

    def parameters(self) -> dict[str, object]:
        """Plain, JSON-ready values in field order: what a notebook's parameters cell holds."""
        return {name: _plain(getattr(self, name)) for name in field_names()}

    def replace(self, **changes: object) -> RunConfig:
        return dataclasses.replace(self, **changes)

    @property
    def results(self) -> Path:
        return Path(self.results_dir)

    def store_path(self) -> Path:
        """Where the score store of this configuration lives."""
        from lsi.store import store_dir

        return store_dir(
            self.results, self.model, self.task, self.granularity.value, self.dtype.value, self.limit
        )


def field_names(groups: Iterable[str] | None = None) -> list[str]:
    """The configuration's fields in order, or those of some groups."""
    wanted = None if groups is None else set(groups)
    return [f.name for f in dataclasses.fields(RunConfig) if wanted is None or f.metadata["group"] in wanted]


# Options lm-eval's own command line also has: its underscore spelling works here too.
LM_EVAL_SPELLINGS = ("include_path", "confirm_run_unsafe_code")


def add_arguments(parser: argparse.ArgumentParser, names: Iterable[str]) -> None:
    """Add one option per named field, with the field's type, choices, default and help."""
    wanted = set(names)
    for spec in dataclasses.fields(RunConfig):
        if spec.name not in wanted:
            continue
        flags = [spec.metadata["flag"] or "--" + spec.name.replace("_", "-")]
        if spec.name in LM_EVAL_SPELLINGS:
            flags.append("--" + spec.name)
        kind = _base_type(_hints()[spec.name])
        common = {"dest": spec.name, "default": _plain(spec.default), "help": spec.metadata["help"]}
        if kind is bool:
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
        elif isinstance(kind, type) and issubclass(kind, enum.Enum):
            parser.add_argument(*flags, choices=[member.value for member in kind], **common)
        else:
            parser.add_argument(*flags, type=kind, **common)


@functools.cache
def _hints() -> dict[str, object]:
    return typing.get_type_hints(RunConfig)


def _base_type(hint: object) -> type:
    """`int | None` -> int: the type a command-line string converts to."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint  # type: ignore[return-value]


def _checked(spec: dataclasses.Field, value: object) -> object:
    """The value as the field's type, or a UserError naming the field, what it allows and the value."""
    kind = _base_type(_hints()[spec.name])
    optional = spec.default is None
    if value is None and optional:
        return None
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(value)
        except ValueError:
            allowed = ", ".join(member.value for member in kind)
            raise UserError(f"{spec.name} must be one of {allowed}, got {value!r}") from None
    if kind is int:
        least = spec.metadata["least"]
        if not isinstance(value, int) or isinstance(value, bool) or (least is not None and value < least):
            raise UserError(f"{spec.name} must be an integer >= {least}, got {value!r}")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise UserError(f"{spec.name} must be true or false, got {value!r}")
        return value
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise UserError(f"{spec.name} must be a non-empty string, got {value!r}")
    return value


def _plain(value: object) -> object:
    return value.value if isinstance(value, enum.Enum) else value


DEFAULTS = RunConfig()
