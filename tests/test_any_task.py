"""Any lm-eval task: lsi's per-document values equal lm-eval's `simple_evaluate` through HFLM on the
model with the same players removed lm-eval-side, for each output type lsi scores, including a
user's YAML task over a local file (tests/tasks)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from test_lm_eval_equivalence import _lm_eval_run

from lsi.analysis import above_chance
from lsi.layer_game import LayerGame
from lsi.players import coalition_without, parse_players
from lsi.scoring import Scorer
from lsi.tasks import load_task, offline_tasks
from lsi.values import chance_level, document_values, game_value

USER_TASKS = str(Path(__file__).parent / "tasks")
RTOL = 1e-4  # float32: two correct summation orders of one request's log-probs


@pytest.mark.slow
@pytest.mark.parametrize(
    ("task", "include", "limit", "granularity", "drop"),
    [
        ("lambada_openai", (), 12, "block", ()),
        ("lambada_openai", (), 12, "block", ("block.3", "block.4")),
        ("lsi_tiny_passages", (USER_TASKS,), None, "sublayer", ("attn.2", "mlp.9")),
        ("lsi_tiny_passages", (USER_TASKS,), None, "block", ("block.0",)),
    ],
)
def test_values_equal_lm_eval(smollm, tmp_path, monkeypatch, task, include, limit, granularity, drop):
    monkeypatch.chdir(Path(__file__).parent.parent)  # the user YAML names its data file from the repo root
    task_set = load_task(task, include_path=include)
    scorer = Scorer(smollm, task_set, limit, granularity, tmp_path)
    dropped = parse_players(drop, scorer.players)
    row = scorer.scores([coalition_without(scorer.players, dropped)], progress=False).iloc[0]
    out = _lm_eval_run(smollm, scorer, dropped)

    samples = {s["doc_id"]: s for s in out["samples"][task]}
    theirs = [float(np.ravel(samples[doc.doc_id]["resps"][0][0])[0]) for doc in scorer.docs]
    np.testing.assert_allclose(row.loglik.astype(float), theirs, rtol=RTOL)
    results = out["results"][task]
    for key, value in results.items():
        metric, _, filter_name = key.partition(",")
        if filter_name == "none" and not metric.endswith("_stderr") and isinstance(value, float):
            ours = row.acc if metric == "acc" else None
            assert ours is None or ours == pytest.approx(value, abs=1 / len(scorer.docs))
    ppl = task_set.metric
    assert math.exp(-row.score) == pytest.approx(results[f"{ppl},none"], rel=RTOL) or ppl == "bits_per_byte"
    # The game's per-document values average to the stored value.
    values = document_values(scorer.store.meta, row.to_dict())
    assert values.mean() == pytest.approx(row.score, rel=1e-5)
    assert LayerGame(scorer.store).chance is None  # a perplexity has no floor before the empty model


def test_user_task_files_join_the_identity(tmp_path, monkeypatch):
    monkeypatch.chdir(Path(__file__).parent.parent)
    task_set = load_task("lsi_tiny_passages", include_path=(USER_TASKS,))
    assert set(task_set.user_files) == {"tiny_passages.yaml", "tests/tasks/passages.jsonl"}
    assert task_set.identity() == {"user_files": task_set.user_files}
    assert task_set.output_type == "loglikelihood_rolling" and task_set.metric == "word_perplexity"
    assert "lower-is-better" in task_set.value_rule()
    assert load_task("arc_easy").identity() is None


@pytest.mark.slow
@pytest.mark.parametrize(
    ("granularity", "drop"),
    [("block", ()), ("block", ("block.3", "block.4")), ("sublayer", ("attn.5", "mlp.2"))],
)
def test_generations_equal_lm_eval(smollm, tmp_path, granularity, drop):
    """nq_open (generate_until): the reduced model's greedy texts, filters and exact match are lm-eval's;
    a document whose decoding met a near tie (top two logits within 1e-4) is reported, not compared."""
    scorer = Scorer(smollm, "nq_open", 8, granularity, tmp_path)
    dropped = parse_players(drop, scorer.players)
    coalition = coalition_without(scorer.players, dropped)
    row = scorer.scores([coalition], progress=False).iloc[0]
    out = _lm_eval_run(smollm, scorer, dropped)

    samples = {s["doc_id"]: s for s in out["samples"]["nq_open"]}
    _, ties = scorer.texts(scorer.backend.worker.generate(scorer.job, [coalition])[0])
    assert row.near_ties == ties
    per_doc = json.loads(row.doc_metrics)
    compared = 0
    for i, doc in enumerate(scorer.docs):
        sample = samples[doc.doc_id]
        if row.near_ties and scorer.generation and _tied(scorer, coalition, i):
            print(f"near tie, not compared: nq_open doc {doc.doc_id}")
            continue
        assert row.generations[i] == sample["resps"][0][0], f"doc {doc.doc_id}"
        assert per_doc["exact_match,remove_whitespace"][i] == sample["exact_match"]
        compared += 1
    assert compared >= len(scorer.docs) - row.near_ties
    assert any(text.strip() for text in row.generations)  # the comparison is of real texts
    results = out["results"]["nq_open"]
    assert row.score == pytest.approx(results["exact_match,remove_whitespace"], abs=row.near_ties / 8 + 1e-12)
    assert json.loads(row.metrics)["gold_loglik"] == pytest.approx(float(np.mean(row.loglik)), rel=1e-6)


def _tied(scorer: Scorer, coalition: str, i: int) -> bool:
    from lsi.generation import generate
    from lsi.masking import skip

    removed = [p for p, bit in zip(scorer.players, coalition, strict=True) if bit == "0"]
    with skip(scorer.lm.model, removed):
        (one,) = generate(scorer.lm.model, [scorer.generation[i]], scorer.hflm.tok_decode)
    return one.min_gap < 1e-4


def _yaml(folder: Path, name: str, text: str) -> None:
    (folder / f"{name}.yaml").write_text(text)


def test_bad_user_tasks_name_the_problem(tmp_path):
    data = Path(USER_TASKS) / "passages.jsonl"
    rolling = (
        f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\ntest_split: test\n"
        'output_type: loglikelihood_rolling\ndoc_to_text: ""\ndoc_to_target: "{{text}}"\n'
        "metric_list:\n  - metric: word_perplexity\n"
    )
    _yaml(tmp_path, "typo", "task: my_typo\n" + rolling.replace("doc_to_target", "doc_target"))
    _yaml(tmp_path, "broken", "task: my_broken\n  - : [\n")
    _yaml(tmp_path, "unsafe", "task: my_unsafe\nunsafe_code: true\n" + rolling)
    _yaml(tmp_path, "sampled", "task: my_sampled\nrepeats: 4\n" + rolling)
    with pytest.raises(
        ValueError, match=r"'my_typo' \(.*typo.yaml\) does not load in lm-eval: TypeError: .*doc_target"
    ):
        load_task("my_typo", include_path=[str(tmp_path)])
    with pytest.raises(
        ValueError, match=r"unknown task 'my_broken'.*do not parse: broken.yaml \(mapping values"
    ):
        load_task("my_broken", include_path=[str(tmp_path)])
    with pytest.raises(ValueError, match="my_unsafe runs code the model writes.*--confirm-run-unsafe-code"):
        load_task("my_unsafe", include_path=[str(tmp_path)])
    assert load_task("my_unsafe", include_path=[str(tmp_path)], confirm_unsafe=True).output_type == (
        "loglikelihood_rolling"
    )
    with pytest.raises(ValueError, match="my_sampled samples its generations.*must be deterministic"):
        load_task("my_sampled", include_path=[str(tmp_path)])
    with pytest.raises(ValueError, match="--include-path '/nowhere' is not a folder"):
        load_task("my_unsafe", include_path=["/nowhere"])


def test_offline_data_and_its_deviations():
    trivia = load_task("triviaqa")
    assert trivia.output_type == "generate_until" and trivia.metric == "exact_match,remove_whitespace"
    assert sum(trivia.sizes.values()) == 7993
    assert any("rc.wikipedia.nocontext" in d and "rc.nocontext" in d for d in trivia.deviations)
    assert trivia.metric_names() == ["exact_match,remove_whitespace", "gold_loglik"]
    assert trivia.gold_request(trivia.documents(1)[0])[1].startswith(" ")
    lambada = load_task("lambada_openai")
    assert (lambada.output_type, lambada.split, sum(lambada.sizes.values())) == (
        "loglikelihood",
        "test",
        5153,
    )
    assert lambada.metric_names() == ["perplexity", "acc"] and lambada.chance(lambada.documents(2)) == 0.0
    doc = lambada.documents(1)[0]
    assert doc.doc["text"] == doc.requests[0][0] + doc.requests[0][1]
    with pytest.raises(
        ValueError, match=r"'gsm8k' reads the hub dataset 'openai/gsm8k/main'.*LSI_TASKS_FROM_HUB"
    ):
        load_task("gsm8k")


def test_perplexity_values_split_over_documents():
    """The per-document values of a perplexity average to lm-eval's aggregate, negated in log space."""
    task_set = load_task("lsi_tiny_passages", include_path=(USER_TASKS,))
    docs = task_set.documents()
    loglik = -np.linspace(20.0, 60.0, len(docs))
    per_doc = [task_set.doc_metrics(doc, [ll]) for doc, ll in zip(docs, loglik, strict=True)]
    metrics = task_set.aggregate(docs, per_doc)
    meta = {"metric": task_set.metric, "documents": [task_set.document_counts(doc) for doc in docs]}
    row = {"loglik": loglik}
    for metric in ("word_perplexity", "byte_perplexity", "bits_per_byte"):
        value = document_values(meta, row, metric).mean()
        assert value == pytest.approx(game_value(metric, metrics[metric]), rel=1e-12)
    words = sum(d["words"] for d in meta["documents"])
    assert metrics["score"] == pytest.approx(loglik.sum() / words, rel=1e-12)
    assert chance_level(meta | {"chance": 0.0, "majority_rate": 0.0}) is None


def test_floors_of_tasks_without_choices():
    exact = np.zeros(200)
    exact[:29] = 1
    assert not above_chance(exact, 0.0)  # 29 right answers: not clearly above a floor of 0
    exact[29] = 1
    assert above_chance(exact, 0.0)
    assert above_chance(np.linspace(-5, -1, 50), -4.0) and not above_chance(np.linspace(-5, -1, 50), -2.0)
    assert not above_chance(np.ones(10), None)


@pytest.mark.slow
def test_every_offline_task_builds_its_documents():
    """Every task and group `lsi tasks` lists builds five documents per subtask from the offline data."""
    listed = offline_tasks()
    assert len(listed) >= 550 and {"triviaqa", "nq_open", "lambada_openai", "mmlu", "arc_easy"} <= set(listed)
    for name, output_type in listed.items():
        task_set = load_task(name)
        assert task_set.output_type == output_type, name
        docs = task_set.documents(5)
        assert 0 < len(docs) <= 5 * len(task_set.subtasks), name
        assert all(doc.requests for doc in docs), name


@pytest.mark.slow  # builds TriviaQA twice
def test_the_studys_capped_triviaqa_is_stock_triviaqa_but_for_its_cap():
    """studies/tasks/triviaqa_32.yaml (the recall study's task): lm-eval's triviaqa with decoding capped
    at 32 new tokens, nothing else changed; the same documents and requests."""
    ours = load_task("triviaqa_32", include_path=(str(Path(__file__).parent.parent / "studies/tasks"),))
    stock = load_task("triviaqa")
    theirs, mine = (t.subtasks[t.name].config.to_dict() for t in (stock, ours))
    assert mine.pop("task") == "triviaqa_32" and theirs.pop("task") == "triviaqa"
    for config in (mine, theirs):
        config["metadata"].pop("config_source")  # where each YAML lies
    assert (
        mine["generation_kwargs"].pop("max_gen_toks") == 32
        and "max_gen_toks" not in theirs["generation_kwargs"]
    )
    assert mine == theirs
    assert (ours.data, ours.split, ours.metric) == (stock.data, stock.split, stock.metric)
    docs, stock_docs = ours.documents(5), stock.documents(5)
    assert [(d.doc, d.gold, d.requests[0][0]) for d in docs] == [
        (d.doc, d.gold, d.requests[0][0]) for d in stock_docs
    ]


@pytest.mark.slow  # builds PIQA's 1838 documents twice
def test_the_held_out_piqa_is_stock_piqa_after_the_studys_documents():
    """studies/tasks/piqa_heldout.yaml (out-of-sample pruning curves): lm-eval's piqa without the first
    1000 validation documents, which the study's stores hold; nothing else changed. Its identity names
    the Python file that selects the documents, and every key in it is the same on any checkout."""
    ours = load_task("piqa_heldout", include_path=(str(Path(__file__).parent.parent / "studies/tasks"),))
    stock = load_task("piqa")
    theirs, mine = (t.subtasks[t.name].config.to_dict() for t in (stock, ours))
    assert mine.pop("task") == "piqa_heldout" and theirs.pop("task") == "piqa"
    for config in (mine, theirs):
        config["metadata"].pop("config_source")
    assert mine.pop("process_docs") and "process_docs" not in theirs
    assert mine["fewshot_config"].pop("process_docs") and theirs["fewshot_config"].pop("process_docs") is None
    assert mine == theirs
    docs, stock_docs = ours.documents(None), stock.documents(None)
    assert len(docs) == len(stock_docs) - 1000 == 838
    assert [(d.doc, d.gold, d.requests) for d in docs] == [
        (d.doc, d.gold, d.requests) for d in stock_docs[1000:]
    ]
    files = ours.identity()["user_files"]
    assert {"piqa_heldout.yaml", "heldout.py"} <= set(files)
    assert not [key for key in files if Path(key).is_absolute()]  # not where this checkout's venv lies
