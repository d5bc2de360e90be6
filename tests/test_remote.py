"""Scoring elsewhere: export a job, score it in a process that cannot import lm-eval, datasets or gguf
(as on the lent GPU machine), import the scores, and get what local scoring gives."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lsi.remote import PART_BYTES, _load_weights, _save_weights, export_job, import_scores
from lsi.scoring import Scorer

ROOT = Path(__file__).resolve().parent.parent
# Runs the remote side with the heavy local-only packages made unimportable.
REMOTE = """
import sys
for name in ("lm_eval", "datasets", "gguf"):
    sys.modules[name] = None
from lsi.remote import main
main(sys.argv[1:])
"""


@pytest.mark.slow
def test_round_trip_equals_local_scoring(smollm, tmp_path: Path) -> None:
    local = Scorer(smollm, "arc_easy", 4, "sublayer", tmp_path / "local")
    n = len(local.players)
    coalitions = ["1" * n, "0" + "1" * (n - 1), "1" * 10 + "0" * 5 + "1" * (n - 15)]
    job = export_job(local, coalitions, tmp_path / "job", part_bytes=16 * 2**20)
    assert len(list((tmp_path / "job").glob("weights-*.safetensors"))) > 1  # carried in parts
    subprocess.run(
        [sys.executable, "-c", REMOTE, str(job.parent), str(tmp_path / "out"), "--device", "cpu"],
        check=True,
        cwd=ROOT,
    )
    imported = Scorer(smollm, "arc_easy", 4, "sublayer", tmp_path / "imported")
    assert import_scores(imported, tmp_path / "out/scores.npz") == 3
    assert import_scores(imported, tmp_path / "out/scores.npz") == 0  # already stored
    ours = local.scores(coalitions, progress=False).set_index("coalition")
    theirs = imported.scores(coalitions, progress=False).set_index("coalition")  # read back, nothing scored
    for c in coalitions:
        np.testing.assert_allclose(theirs.at[c, "loglik"], ours.at[c, "loglik"], rtol=2e-5, atol=1e-4)
        assert np.array_equal(theirs.at[c, "doc_acc_norm"], ours.at[c, "doc_acc_norm"])
    assert set(theirs["device"]) == {"cpu"}


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
