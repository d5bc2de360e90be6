"""How a result was made: package versions, and the metadata a score store records.

Kept apart from scoring so that the model-free read side (results, figures) can stamp what it
writes without importing torch, transformers or lm-eval.
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lsi.models import LoadedModel
    from lsi.players import Player
    from lsi.tasks import Document, TaskSet

VERSIONED = ("lsi", "torch", "transformers", "lm_eval", "datasets", "numpy", "pandas", "shapiq")
# Two choices whose (normalised) log-likelihoods differ by less than this are a near tie: another
# correct computation order may flip the prediction, so such documents are counted per coalition.
TIE_TOLERANCE = 1e-4


def now() -> str:
    """A UTC timestamp to the second, as every result file records it."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    """The versions of Python and of every package a number depends on."""
    found = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def store_meta(
    lm: LoadedModel,
    task: TaskSet,
    docs: Sequence[Document],
    limit: int | None,
    granularity: str,
    players: Sequence[Player],
    device: str,
    max_length: int,
    store_format: int,
) -> dict:
    """Everything a score store must say about how its scores were made."""
    described = task.describe()
    return {
        "format": store_format,
        "created": now(),
        "model": lm.identity.as_dict(),
        "weights_sha256": lm.identity.weights_sha256,
        "dtype": lm.dtype,
        "device": device,
        "add_bos_token": lm.add_bos_token,
        "max_length": max_length,
        "task": task.name,
        "split": task.split,
        "task_info": described,
        "metric": task.metric,
        "limit": limit,
        "granularity": granularity,
        "players": [p.name for p in players],
        "lm_eval": described["lm_eval"],
        "versions": versions(),
        "task_files": task.identity(),
        "n_docs": len(docs),
        "chance": task.chance(docs),
        # Over the whole split: on a small slice the most frequent gold index is mostly noise.
        "majority_rate": task.split_majority_rate,
        "majority_rate_evaluated": task.majority_rate(docs),
        "documents": [
            {
                "subtask": d.subtask,
                "doc_id": d.doc_id,
                "gold": d.gold,
                "n_choices": len(d.requests),
                "choice_chars": [len(c) for c in d.choices],  # acc_norm's divisors
            }
            | task.document_counts(d)
            for d in docs
        ],
        "tie_tolerance": TIE_TOLERANCE,
    }


def made_from(meta: dict) -> dict:
    """What a result computed from one store names of it: model, dtype, task, split and documents."""
    return {key: meta[key] for key in ("model", "dtype", "task", "split", "limit", "n_docs")}
