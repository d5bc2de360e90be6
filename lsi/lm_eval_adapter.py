"""The one module that reaches into lm-evaluation-harness's internals.

lsi builds tasks with lm-eval's own task factory (re-pointing each config at offline data before the
task is built), tokenises requests exactly as lm-eval's HFLM does, and quiets lm-eval's per-document
template compilation and progress bars. Each of those uses a name that is not lm-eval's public API,
so all of them live here: lm-eval other than the tested version gets a warning, and a missing
internal is refused in one line that names the tested version.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.metadata
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets
import jinja2
import lm_eval
import lm_eval.api.task
import lm_eval.utils
import yaml
from lm_eval.api.group import Group
from lm_eval.api.task import ConfigurableTask
from lm_eval.tasks import TaskManager
from tqdm import tqdm

from lsi.errors import UserError

TESTED_VERSION = "0.4.13"
# Every lm-eval name lsi uses that is not its public API, as "module:attribute.path".
INTERNALS = (
    "lm_eval.tasks._factory:TaskFactory._load_full_config",
    "lm_eval.tasks._index:Entry",
    "lm_eval.tasks._index:Kind.TASK",
    "lm_eval.tasks._index:Kind.GROUP",
    "lm_eval.models.huggingface:HFLM._encode_pair",
    "lm_eval.models.huggingface:HFLM.prefix_token_id",
    "lm_eval.utils:apply_template",
    "lm_eval.utils:env",
    "lm_eval.api.task:tqdm",
)
LM_EVAL_TASKS = Path(lm_eval.__file__).parent / "tasks"

__all__ = ["ConfigurableTask", "Group", "LM_EVAL_TASKS", "TESTED_VERSION", "TaskManager"]


def version() -> str:
    return importlib.metadata.version("lm_eval")


def internal(dotted: str) -> Any:
    """An lm-eval internal ("module:attribute.path"), or a UserError naming the tested version."""
    module_name, _, path = dotted.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in path.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        raise UserError(
            f"lm-eval {version()} lacks {module_name}.{path}, which lsi uses; "
            f"install the tested version: pip install lm-eval=={TESTED_VERSION}"
        ) from None
    return found


@functools.cache
def check() -> None:
    """Once per process: every internal is there (else a UserError); warn on an untested version."""
    for dotted in INTERNALS:
        internal(dotted)
    if version() != TESTED_VERSION:
        warnings.warn(
            f"lm-eval {version()} is installed; lsi is tested with {TESTED_VERSION}: "
            "scores may differ from lm-eval's own if its internals changed",
            stacklevel=2,
        )


# ---------------------------------------------------------------- building tasks


@functools.cache
def task_manager(include: tuple[str, ...] = (), defaults: bool = True) -> TaskManager:
    """A TaskManager over some folders of task YAMLs, with or without lm-eval's own (indexing all of
    lm-eval's 14,000 YAMLs takes ~8 s, one folder a few milliseconds)."""
    check()
    return TaskManager(include_path=list(include) or None, include_defaults=defaults)


def stock_folder(folder: str) -> TaskManager:
    """A TaskManager indexing only one folder of lm-eval's tasks."""
    return task_manager((str(LM_EVAL_TASKS / folder),), False)


def full_config(manager: TaskManager, task: str) -> dict[str, Any]:
    """The YAML of a (sub)task, includes resolved, before any re-pointing."""
    factory = internal("lm_eval.tasks._factory:TaskFactory")()
    return factory._load_full_config(manager.task_index[task])


def is_leaf(entry: Any) -> bool:
    """Whether an index entry is one YAML task (not a group, tag or Python-defined task)."""
    return entry.kind is internal("lm_eval.tasks._index:Kind.TASK")


def is_group(entry: Any) -> bool:
    return entry is not None and entry.kind is internal("lm_eval.tasks._index:Kind.GROUP")


def group_members(manager: TaskManager) -> dict[str, list[str]]:
    """{group or tag: its member names}: a group's YAML lists them, a tag's members carry it."""
    kinds = internal("lm_eval.tasks._index:Kind")
    out: dict[str, list[str]] = {}
    for name, entry in manager.task_index.items():
        if entry.kind is kinds.GROUP:
            members = (entry.cfg or {}).get("task")
            members = members if isinstance(members, list) else [members]
            out[name] = [m if isinstance(m, str) else None for m in members]  # None: defined inline
        for tag in entry.tags:
            out.setdefault(tag, []).append(name)
    return out


def build_task(
    manager: TaskManager, name: str, repoint: Callable[[dict[str, Any]], dict[str, Any]] | None = None
) -> ConfigurableTask | Group:
    """Build lm-eval's Task (or Group of Tasks) the way TaskManager.load does; `repoint` rewrites each
    leaf task's full config before its Task is built (e.g. to read offline data files)."""
    index = manager.task_index
    factory_class = internal("lm_eval.tasks._factory:TaskFactory")
    leaf = internal("lm_eval.tasks._index:Kind.TASK")

    class Repointing(factory_class):
        def _load_full_config(self, entry: Any, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
            cfg = super()._load_full_config(entry, overrides)
            return repoint(cfg) if repoint is not None and entry.kind is leaf else cfg

    with quiet():
        return Repointing().build(index[name], registry=dict(index))


@contextlib.contextmanager
def _replaced(owner: object, name: str, value: object) -> Iterator[None]:
    """Set an attribute for the duration of a block, and restore it."""
    before = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, before)


@functools.lru_cache(maxsize=1024)
def _compiled(template: str) -> jinja2.Template:
    return internal("lm_eval.utils:env").from_string(template)


def _apply_template(template: str, doc: dict[str, Any]) -> str:
    return _compiled(template).render(**doc)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Hide the per-split progress bars of datasets and lm-eval (57 of each for mmlu) and lm-eval's
    warnings about stock configs, and reuse compiled prompt templates: lm-eval recompiles the same
    Jinja template for every document, ~90% of the time it takes to build mmlu's 14,042 prompts.
    Both patches replace lm-eval module attributes (`lm_eval.api.task.tqdm`, `lm_eval.utils.
    apply_template`) for the duration of the block only."""
    check()
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    logger = logging.getLogger("lm_eval")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with (
            _replaced(lm_eval.api.task, "tqdm", functools.partial(tqdm, disable=True)),
            _replaced(lm_eval.utils, "apply_template", _apply_template),
        ):
            yield
    finally:
        logger.setLevel(level)
        if bars:
            datasets.enable_progress_bars()


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """Make `datasets` refuse the network while lm-eval's tasks read local files."""
    saved = {key: os.environ.get(key) for key in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")}
    os.environ.update(dict.fromkeys(saved, "1"))
    try:
        with _replaced(datasets.config, "HF_HUB_OFFLINE", True):
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ---------------------------------------------------------------- tokenising requests


def hflm(model: object, tokenizer: object, add_bos_token: bool | None, batch_size: int = 1) -> Any:
    """lm-eval's own HFLM wrapper around a loaded model: its tokenisation is the one lsi scores."""
    check()
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, add_bos_token=add_bos_token)


def encode_pairs(wrapper: Any, pairs: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    """(context, continuation) token ids per request, as `HFLM.loglikelihood` encodes them (an empty
    context gets the prefix token, or the continuation's first token where that already is it)."""
    out = []
    for context, continuation in pairs:
        if context == "":
            cont = wrapper.tok_encode(continuation, add_special_tokens=False)
            prefix = wrapper.prefix_token_id
            out.append(([prefix], cont) if prefix != cont[0] else (cont[:1], cont[1:]))
        else:
            out.append(wrapper._encode_pair(context, continuation))
    return out


# ---------------------------------------------------------------- filters


def filter_names(task: ConfigurableTask) -> list[str]:
    """The names of a task's filter pipelines ("none" when it has no filter_list), in order."""
    return [ensemble.name for ensemble in task._filters]


def filtered(task: ConfigurableTask, doc: dict[str, Any], responses: Sequence[Any]) -> dict[str, list[Any]]:
    """Each filter pipeline's output for one document's responses (one per request), as
    `FilterEnsemble.apply` computes it over Instances: filters are per instance, so a document alone
    gets what it gets inside a whole task."""
    out = {}
    for ensemble in task._filters:
        resps: Any = [[response] for response in responses]
        for make in ensemble.filters:
            resps = list(make().apply(resps, [doc] * len(responses)))
        out[ensemble.name] = resps
    return out


def rolling_windows(wrapper: Any, text: str) -> list[tuple[list[int], list[int]]]:
    """(context, continuation) token windows of one rolling log-likelihood request, as
    `HFLM.loglikelihood_rolling` makes them: disjoint windows of at most max_length tokens."""
    windows = lm_eval.utils.get_rolling_token_windows(
        token_list=wrapper.tok_encode(text),
        prefix_token=wrapper.prefix_token_id,
        max_seq_len=wrapper.max_length,
        context_len=1,
    )
    return [lm_eval.utils.make_disjoint_window(window) for window in windows]


def generation_request(
    wrapper: Any, context: str, gen_kwargs: dict[str, Any]
) -> tuple[list[int], list[str], int]:
    """(prompt tokens, stop strings, token budget) of one generate_until request, as
    `HFLM.generate_until` prepares it: stop strings get the end-of-sequence text, the prompt keeps
    its last max_length - max_gen_toks tokens."""
    from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs

    kwargs = normalize_gen_kwargs(dict(gen_kwargs), wrapper.max_gen_toks)
    eos = wrapper.tok_decode(wrapper.eot_token_id, skip_special_tokens=False)
    until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
    max_gen_toks = kwargs.pop("max_gen_toks")
    ids, _ = wrapper.tok_batch_encode(
        [context], left_truncate_len=wrapper.max_length - max_gen_toks, truncation=wrapper.truncation
    )
    return ids[0].tolist(), until, max_gen_toks


def generated_text(wrapper: Any, tokens: Sequence[int], until: Sequence[str]) -> str:
    """The text lm-eval keeps of generated tokens: decoded, special tokens skipped, cut at the first
    stop string."""
    from lm_eval.models.utils import postprocess_generated_text

    return postprocess_generated_text(wrapper.tok_decode(list(tokens)), list(until), None)


class _TaskYaml(yaml.SafeLoader):
    """Reads task YAMLs for diagnostics only: lm-eval's `!function` tags are kept as text."""


_TaskYaml.add_multi_constructor("!", lambda loader, suffix, node: loader.construct_scalar(node))


def unreadable_yamls(folders: Sequence[str]) -> list[tuple[Path, str]]:
    """YAML files under the folders that do not parse, with the parser's reason in one line (lm-eval's
    index skips them with only a log line)."""
    out = []
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.y*ml")):
            try:
                yaml.load(path.read_text(errors="replace"), Loader=_TaskYaml)  # noqa: S506 - a SafeLoader
            except yaml.YAMLError as err:
                out.append((path, " ".join(str(err).split())))
    return out
