"""Scoring elsewhere: export a job, score it in a process that cannot import lm-eval or datasets (nor
gguf, when the weights travel in parts), as on the lent GPU machine, import the scores, and get what
local scoring gives."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lsi import remote
from lsi.errors import UserError
from lsi.hardware import cpu_label
from lsi.models import gguf_path
from lsi.remote import (
    PART_BYTES,
    _load_weights,
    _save_weights,
    export_job,
    import_scores,
    join_parts,
    run_job,
    split_file,
)
from lsi.scoring import Scorer

ROOT = Path(__file__).resolve().parent.parent
# Runs the remote side with the heavy local-only packages made unimportable.
REMOTE = """
import sys
for name in sys.argv.pop(1).split(","):
    sys.modules[name] = None
from lsi.remote import main
main(sys.argv[1:])
"""


@pytest.mark.slow
@pytest.mark.parametrize("weights", ["parts", "gguf", "gguf-parts"])
def test_round_trip_equals_local_scoring(smollm, tmp_path: Path, weights: str) -> None:
    local = Scorer(smollm, "arc_easy", 4, "sublayer", tmp_path / "local")
    n = len(local.players)
    coalitions = ["1" * n, "0" + "1" * (n - 1), "1" * 10 + "0" * 5 + "1" * (n - 15)]
    gguf = gguf_path(smollm.identity.name)
    job = export_job(local, coalitions, tmp_path / "job", part_bytes=16 * 2**20, gguf=weights != "parts")
    carried = list((tmp_path / "job").glob("weights-*.safetensors"))
    if weights == "parts":
        assert len(carried) > 1
        blocked, where = "lm_eval,datasets,gguf", []
    else:
        assert not carried  # the GGUF travels on its own, here named by --gguf
        if weights == "gguf-parts":  # as 40 MiB parts, rejoined there
            gguf = split_file(gguf, tmp_path / "gguf", part_bytes=40 * 2**20)
            assert len(json.loads(gguf.read_text())["parts"]) == 3
        blocked, where = "lm_eval,datasets", ["--gguf", str(gguf)]
    _run_elsewhere(blocked, job.parent, tmp_path / "out", *where)
    imported = Scorer(smollm, "arc_easy", 4, "sublayer", tmp_path / "imported")
    assert import_scores(imported, tmp_path / "out/scores.npz") == 3
    assert import_scores(imported, tmp_path / "out/scores.npz") == 0  # already stored
    ours = local.scores(coalitions, progress=False).set_index("coalition")
    theirs = imported.scores(coalitions, progress=False).set_index("coalition")  # read back, nothing scored
    for c in coalitions:
        np.testing.assert_allclose(theirs.at[c, "loglik"], ours.at[c, "loglik"], rtol=2e-5, atol=1e-4)
        assert np.array_equal(theirs.at[c, "doc_acc_norm"], ours.at[c, "doc_acc_norm"])
    assert set(theirs["device"]) == {cpu_label()}


def _run_elsewhere(blocked: str, job: Path, out: Path, *options: str) -> None:
    """`python -m lsi.remote JOB OUT --device cpu OPTIONS` with the `blocked` modules unimportable."""
    subprocess.run(
        [sys.executable, "-c", REMOTE, blocked, str(job), str(out), "--device", "cpu", *options],
        check=True,
        cwd=ROOT,
    )


@pytest.mark.slow
def test_generation_round_trip_equals_local_scoring(smollm, tmp_path: Path) -> None:
    """A generate_until job carries its prompts, stop strings and tokenizer: the texts, exact match and
    gold log-likelihoods imported equal local scoring's, and the tokenizer's decoder is the only one
    the other side needs (no lm-eval, datasets or gguf there: the weights travel in parts)."""
    local = Scorer(smollm, "nq_open", 4, "block", tmp_path / "local")
    coalitions = ["1" * 30, "1" * 3 + "0" + "1" * 26]
    job = export_job(local, coalitions, tmp_path / "job")
    assert (job.parent / "tokenizer").is_dir()
    _run_elsewhere("lm_eval,datasets,gguf", job.parent, tmp_path / "out")
    imported = Scorer(smollm, "nq_open", 4, "block", tmp_path / "imported")
    assert import_scores(imported, tmp_path / "out/scores.npz") == 2
    ours = local.scores(coalitions, progress=False).set_index("coalition")
    theirs = imported.scores(coalitions, progress=False).set_index("coalition")
    for c in coalitions:
        assert list(theirs.at[c, "generations"]) == list(ours.at[c, "generations"])
        assert theirs.at[c, "doc_metrics"] == ours.at[c, "doc_metrics"]
        assert theirs.at[c, "near_ties"] == ours.at[c, "near_ties"]
        np.testing.assert_allclose(theirs.at[c, "loglik"], ours.at[c, "loglik"], rtol=2e-5, atol=1e-4)
    assert any(text.strip() for text in ours["generations"].iloc[0])  # real texts were compared


@pytest.mark.slow
def test_run_refuses_weights_that_differ_from_the_export(smollm, tmp_path: Path) -> None:
    """The rebuilt model's state digest must match the exported one, or nothing is scored."""
    scorer = Scorer(smollm, "arc_easy", 2, "block", tmp_path / "store")
    path = export_job(scorer, ["1" * 30], tmp_path / "job", gguf=True)
    job = json.loads(path.read_text())
    path.write_text(json.dumps(dict(job, state_sha256="0" * 64)))
    with pytest.raises(ValueError, match="rebuilt weights differ"):
        run_job(path.parent, tmp_path / "out", "cpu", gguf=gguf_path(smollm.identity.name))
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_jobs_of_one_model_share_its_load(smollm, tmp_path: Path, monkeypatch) -> None:
    """Several jobs in one run rebuild a model once, and each gets the scores a run of its own gives."""
    gguf = gguf_path(smollm.identity.name)
    jobs = [
        export_job(
            Scorer(smollm, task, 2, "block", tmp_path / "store"),
            ["1" * 30, "0" + "1" * 29],
            tmp_path / task,
            gguf=True,
        ).parent
        for task in ("arc_easy", "piqa")
    ]
    alone = run_job(jobs[1], tmp_path / "alone", "cpu", gguf=gguf)
    loads = []
    build = remote._checked_model
    monkeypatch.setattr(
        remote, "_checked_model", lambda folder, *rest: loads.append(folder) or build(folder, *rest)
    )
    remote.main([*map(str, jobs), str(tmp_path / "out"), "--device", "cpu", "--gguf", str(gguf)])
    assert loads == [jobs[0]]
    together = np.load(tmp_path / "out/piqa/scores.npz")
    assert list(together["coalitions"]) == ["1" * 30, "0" + "1" * 29]
    np.testing.assert_array_equal(together["loglik"], np.load(alone)["loglik"])
    assert (tmp_path / "out/arc_easy/scores.npz").is_file()


def test_jobs_need_distinct_folder_names(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        remote.main([str(tmp_path / "a/piqa"), str(tmp_path / "b/piqa"), str(tmp_path / "out")])
    assert "distinct names" in capsys.readouterr().err


def test_import_refuses_other_weights(smollm, tmp_path: Path) -> None:
    scorer = Scorer(smollm, "arc_easy", 2, "block", tmp_path)
    fake = tmp_path / "scores.npz"
    np.savez(
        fake,
        coalitions=np.array(["1" * 30]),
        loglik=np.zeros((1, len(scorer.requests))),
        greedy=np.zeros((1, len(scorer.requests)), bool),
        weights_sha256=np.array("0" * 64),
        device=np.array("cpu"),
        seconds=np.array([0.0, 0.0]),
    )
    with pytest.raises(ValueError, match="other weights"):
        import_scores(scorer, fake)


def test_generative_scores_without_texts_are_refused(smollm, tmp_path: Path) -> None:
    """Scores of a generative task from an export made before jobs carried generation are refused."""
    scorer = Scorer(smollm, "nq_open", 2, "block", tmp_path)
    n = len(scorer.requests)
    with pytest.raises(ValueError, match="no generated tokens"):
        scorer.store_scores(["1" * 30], np.zeros((1, n)), np.zeros((1, n), bool), 0.0, "cpu")


def test_weights_split_and_rejoin(tmp_path: Path) -> None:
    """Tensors larger than a part are cut by rows and rejoined exactly; tied tensors are written once."""
    model = _tied_module()
    parts = _save_weights(model, tmp_path, part_bytes=4096)
    assert len(parts) > 2
    state = _load_weights(tmp_path, parts)
    assert set(state) == {"embed.weight", "proj.bias"}  # proj.weight is tied to embed.weight
    for name, tensor in state.items():
        assert np.array_equal(tensor.numpy(), model.state_dict()[name].numpy())
    assert PART_BYTES < 64 * 2**20


def _tied_module():  # noqa: ANN202
    import torch

    torch.manual_seed(0)
    model = torch.nn.Module()
    model.embed = torch.nn.Embedding(100, 32)
    model.proj = torch.nn.Linear(32, 100)
    model.proj.weight = model.embed.weight
    return model


def test_file_split_and_join(tmp_path: Path) -> None:
    """A file cut into parts joins to the same bytes; a second split keeps the parts; a missing or
    damaged part is refused by name, and the joined file is not left behind damaged."""
    data = np.random.default_rng(0).bytes(10_000)
    (tmp_path / "model.gguf").write_bytes(data)
    manifest = split_file(tmp_path / "model.gguf", tmp_path / "parts", part_bytes=3000)
    parts = sorted((tmp_path / "parts").glob("model.gguf.part[0-9]*"))
    assert [p.stat().st_size for p in parts] == [3000, 3000, 3000, 1000]
    stamps = [p.stat().st_mtime_ns for p in parts]
    assert split_file(tmp_path / "model.gguf", tmp_path / "parts", part_bytes=3000) == manifest
    assert [p.stat().st_mtime_ns for p in parts] == stamps  # vouched for by the manifest: kept
    assert join_parts(manifest).read_bytes() == data
    (tmp_path / "parts/model.gguf").unlink()
    parts[1].write_bytes(b"x" * 3000)
    with pytest.raises(UserError, match="carry them anew"):
        join_parts(manifest)
    assert not (tmp_path / "parts/model.gguf").exists()
    parts[1].unlink()
    with pytest.raises(UserError, match="1 parts of model.gguf are missing"):
        join_parts(manifest)
