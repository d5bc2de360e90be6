"""The closed lists of names every module shares, defined once: granularities, dtypes, the value of
a coalition, pruning measures, and lm-eval's metric names. No heavy imports: the remote scoring job
and the model-free read side use them too.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from lsi.errors import UserError


class Choice(str, enum.Enum):
    """A closed list of names; `parse` turns a name into a member or a UserError listing them."""

    @classmethod
    def parse(cls, value: object) -> Choice:
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(member.value for member in cls)
            raise UserError(f"unknown {cls.__name__.lower()} {value!r}; use one of: {allowed}") from None


class Granularity(Choice):
    """What a player is: a whole decoder block, or its attention / FFN (MoE) branch."""

    BLOCK = "block"
    SUBLAYER = "sublayer"


class DType(Choice):
    """Weights and activations dtype; `auto` is resolved (`lsi.hardware`) before anything names a store."""

    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"
    AUTO = "auto"  # bfloat16 where the device computes it natively, else float32


class Backend(Choice):
    """Where forward passes run: this process, or the workers of a Ray cluster."""

    LOCAL = "local"
    RAY = "ray"


class Value(Choice):
    """The value of a coalition in the layer game."""

    SCORE = "score"  # the task's lm-eval metric (per document: right or wrong)
    MARGIN = "margin"  # the gold choice's log-likelihood margin over the best other choice


class Measure(Choice):
    """A per-player importance measure that orders players for pruning."""

    SHAPLEY = "shapley"
    ABLATION = "ablation"
    BLOCK_INFLUENCE = "bi"  # ShortGPT
    ANGULAR = "angular"  # Gromov et al.
    LLMDROP = "llmdrop"


@dataclass(frozen=True)
class Metric:
    """An lm-eval metric as lm-eval names its results: `metric,filter` (e.g. `acc,none`)."""

    name: str
    filter: str = "none"

    @classmethod
    def parse(cls, text: str) -> Metric:
        name, _, filter_ = text.partition(",")
        if not name:
            raise UserError(f"a metric is written 'metric,filter' (e.g. 'acc,none'); got {text!r}")
        return cls(name, filter_ or "none")

    def __str__(self) -> str:
        return f"{self.name},{self.filter}"
