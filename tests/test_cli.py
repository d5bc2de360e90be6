"""The command-line contract later issues and notebooks rely on, and its errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from lsi.cli import main

pytestmark = pytest.mark.slow
# The stores these tests build: whole blocks in float32 (the configuration's defaults are the paper's
# sub-layers in bfloat16).
BLOCK_FLOAT32 = ("--granularity", "block", "--dtype", "float32")


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_players(capsys):
    code, out, _ = _run(capsys, "players", "--granularity", "sublayer")
    lines = out.split()
    assert (
        code == 0
        and len(lines) == 60
        and lines[:3] == ["attn.0", "mlp.0", "attn.1"]
        and lines[-1] == "mlp.29"
    )


def test_score_ablate_and_scores_share_one_store(capsys, tmp_path):
    common = ["--task", "arc_easy", "--limit", "4", *BLOCK_FLOAT32, "--results", str(tmp_path)]
    code, out, _ = _run(capsys, "score", *common, "--drop", "block.0,block.2", "--json")
    scored = json.loads(out)
    assert code == 0
    assert {"task", "metric", "score", "acc", "acc_norm", "n_docs", "dropped"} <= set(scored)
    assert scored["dropped"] == ["block.0", "block.2"] and scored["n_docs"] == 4
    assert scored["metric"] == "acc_norm" and scored["score"] == scored["acc_norm"]

    code, out, _ = _run(capsys, "ablate", *common, "--json")
    ablation = json.loads(out)
    assert code == 0 and len(ablation["players"]) == 30 and len(ablation["ablation"]) == 30
    first = ablation["ablation"][0]
    assert first["player"] == "block.0" and first["drop"] == pytest.approx(ablation["full"] - first["score"])

    code, out, _ = _run(capsys, "scores", *common, "--json")
    stored = {row["coalition"]: row for row in json.loads(out)}
    assert code == 0 and len(stored) == 32  # full + 30 singles + the pair scored first
    assert stored["01" + "1" * 28]["score"] == first["score"]
    assert stored["0101" + "1" * 26]["acc"] == scored["acc"]

    code, out, _ = _run(capsys, "ablate", *common)  # table form, fully cached now
    assert code == 0 and "block.29" in out and "drop" in out

    # Shapley on a restricted game: only v(00) is new; the estimate is written next to the store.
    code, out, _ = _run(
        capsys,
        "shapley",
        *common,
        "--estimator",
        "exact",
        "--players",
        "block.0,block.1",
        "--bootstrap",
        "20",
    )
    assert code == 0 and "block.1" in out
    code, out, _ = _run(
        capsys, "shapley", *common, "--estimator", "exact", "--players", "block.0,block.1", "--json"
    )
    exact = json.loads(out)
    assert exact["players"] == ["block.0", "block.1"] and exact["evaluations"] == 4
    both, rows = stored["1" * 30]["score"], json.loads(_run(capsys, "scores", *common, "--json")[1])
    empty = next(r["score"] for r in rows if r["coalition"] == "00" + "1" * 28)
    assert sum(exact["values"]) == pytest.approx(both - empty)
    assert len(list(tmp_path.rglob("estimates/exact-*.json"))) == 1  # the rerun replaced the first

    code, out, _ = _run(capsys, "cornerstones", *common, "--json")
    corner = json.loads(out)
    assert (
        code == 0 and len(corner["table"]) == 30 and set(corner["cornerstones"]) <= set(ablation["players"])
    )
    assert corner["full"] == pytest.approx(ablation["full"]) and "McNemar" in corner["rule"]


def test_models_and_tasks_list_offline_assets(capsys):
    code, out, _ = _run(capsys, "models")
    assert code == 0 and out.startswith("smollm2-135m")
    code, out, _ = _run(capsys, "tasks")
    assert code == 0 and {"arc_easy", "boolq", "mmlu", "hellaswag"} <= set(out.split())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["score", "--model", "no-such-model", "--task", "arc_easy"], "unknown model 'no-such-model'"),
        (["score", "--task", "arc_eazy"], "unknown task 'arc_eazy'"),
        (["score", "--task", "arc_easy", "--limit", "0"], "limit must be an integer >= 1"),
        (
            ["score", "--task", "arc_easy", "--limit", "2", *BLOCK_FLOAT32, "--drop", "attn.3"],
            "pass --granularity sublayer",
        ),
        (
            ["score", "--task", "arc_easy", "--limit", "2", *BLOCK_FLOAT32, "--drop", "block.30"],
            "unknown player 'block.30'",
        ),
        (["scores", "--task", "arc_easy", "--results", "/nonexistent"], "no score store"),
        (["shapley", "--task", "arc_easy", "--estimator", "nope"], "unknown estimator 'nope'"),
        (
            ["export-job", "--task", "arc_easy", "--out", "job", "--estimator", "truncated"],
            "'truncated' picks its coalitions from the values",
        ),
        (["export-job", "--task", "arc_easy", "--out", "job", "--gguf-parts", "parts"], "give --gguf too"),
    ],
)
def test_bad_input_gives_one_clear_line(capsys, tmp_path, argv, message):
    if "--results" not in argv:  # keep the repository's results/ untouched
        argv = [*argv, "--results", str(tmp_path)]
    code, _, err = _run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("lsi: error: ") and message in err


def test_export_job_plans_the_estimators_coalitions(capsys, tmp_path):
    """window + KernelSHAP at the window's cost, minus what is stored: the set `lsi.remote` scores so
    that the notebook then runs both estimators from the cache."""
    from lsi.estimators import planned_coalitions
    from lsi.players import window_coalitions

    common = ["--task", "arc_easy", "--limit", "2", *BLOCK_FLOAT32, "--results", str(tmp_path)]
    assert _run(capsys, "score", *common)[0] == 0  # the full model is stored: not exported again
    code, out, _ = _run(
        capsys, "export-job", *common, "--out", str(tmp_path / "job"), "--estimator", "window", "kernelshap"
    )
    job = json.loads((tmp_path / "job/job.json").read_text())
    wanted = {*window_coalitions(30, 3), "0" * 30} | set(planned_coalitions("kernelshap", 30, 88, 0))
    assert code == 0 and set(job["coalitions"]) == wanted - {"1" * 30}
    assert len(job["coalitions"]) == len(set(job["coalitions"])) and out.startswith(
        f"{len(wanted) - 1} coalitions"
    )


def test_foreign_store_is_refused(capsys, tmp_path):
    common = ["--task", "arc_easy", "--limit", "2", *BLOCK_FLOAT32, "--results", str(tmp_path)]
    assert _run(capsys, "score", *common)[0] == 0
    meta_file = next(tmp_path.rglob("meta.json"))
    meta = json.loads(meta_file.read_text())
    meta["weights_sha256"] = "0" * 64  # as if another model's store sat at this path
    meta_file.write_text(json.dumps(meta))
    code, _, err = _run(capsys, "score", *common)
    assert code == 2 and "different weights_sha256" in err


def test_console_entry_point_exit_code():
    proc = subprocess.run(
        [sys.executable, "-m", "lsi.cli", "score", "--task", "nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "unknown task 'nope'" in proc.stderr


def test_a_reader_that_leaves_is_not_an_error():
    """`lsi models | true`: the reader closes the pipe before lsi writes; no traceback, SIGPIPE's status."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "lsi.cli", "models"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait() == 128 + signal.SIGPIPE and err == ""


def test_scores_of_a_store_without_parts_yet(capsys, tmp_path):
    """A run stopped (or still loading) before its first part: `lsi scores` says so, and --json is []."""
    from lsi.config import RunConfig
    from lsi.store import IDENTITY_KEYS, ScoreStore

    path = RunConfig(task="arc_easy", results_dir=str(tmp_path)).store_path()
    ScoreStore.open(path, dict.fromkeys(IDENTITY_KEYS, "x"))
    argv = ["scores", "--task", "arc_easy", "--results", str(tmp_path)]
    assert _run(capsys, *argv)[:2] == (0, f"no coalition is stored yet in {path}\n")
    assert _run(capsys, *argv, "--json")[:2] == (0, "[]\n")


def test_json_output_is_strict_json():
    """A NaN (a measure that does not apply to a player, a missing interval) is printed as null: the
    bare NaN token that json.dumps writes by default is refused by strict readers."""
    from lsi.cli import _nulls

    record = {"table": [{"shapley_stderr": float("nan"), "bi": 0.5}], "spans": (float("nan"), 1)}
    text = json.dumps(_nulls(record))

    def refuse(token: str) -> None:
        raise ValueError(token)

    assert json.loads(text, parse_constant=refuse) == {
        "table": [{"shapley_stderr": None, "bi": 0.5}],
        "spans": [None, 1],
    }
