"""The Ray backend on a local instance (2 CPUs, 2 workers of 1 thread, the embedded model in float32):
the same scores as this process, a killed worker's units resubmitted, a killed driver resumed, and
every socket of the instance on the loopback interface."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from lsi.config import RunConfig
from lsi.errors import UserError
from lsi.hardware import cpu_label
from lsi.jobs import plan_units
from lsi.pipeline import build_scorer, shapley
from lsi.players import single_removals

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
SETTING = {
    "model": "smollm2-135m",
    "task": "arc_easy",
    "limit": 6,
    "granularity": "block",
    "dtype": "float32",
}


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance that the backends of this module join (and leave running)."""
    from lsi.cluster import connect

    ray_module, started = connect(None, cpus=2)
    assert started
    yield ray_module
    ray_module.shutdown()


def _config(tmp_path: Path, **changes: object) -> RunConfig:
    return RunConfig(**(SETTING | changes), results_dir=str(tmp_path))


def _ray_config(tmp_path: Path, **changes: object) -> RunConfig:
    return _config(tmp_path, backend="ray", workers=2, threads=1, **changes)


def _assert_same(ours, theirs, coalitions) -> None:
    ours, theirs = ours.set_index("coalition"), theirs.set_index("coalition")
    for c in coalitions:
        np.testing.assert_allclose(theirs.at[c, "loglik"], ours.at[c, "loglik"], rtol=1e-5)
        for column in ("acc", "acc_norm", "score"):
            assert theirs.at[c, column] == ours.at[c, column]


def test_ablation_and_kernelshap_equal_the_local_backend(local_ray, tmp_path: Path) -> None:
    local, remote = _config(tmp_path / "local"), _ray_config(tmp_path / "ray")
    here, there = build_scorer(local), build_scorer(remote)
    try:
        assert there.lm.model.device.type == "meta"  # the driver holds no weights
        assert len(there.backend.actors) == 2
        coalitions = ["1" * 30, *single_removals(30)]
        _assert_same(
            here.scores(coalitions, progress=False), there.scores(coalitions, progress=False), coalitions
        )
        estimates = [
            shapley(config.replace(estimator="kernelshap", budget=40), scorer.store, lambda s=scorer: s)[0]
            for config, scorer in ((local, here), (remote, there))
        ]
        np.testing.assert_allclose(estimates[1].values, estimates[0].values, rtol=1e-6, atol=1e-9)
        few = ["1" * 15 + "0" * 15, "0" * 15 + "1" * 15]  # fewer coalitions than workers: batches split
        assert any(len(u.batches) < len(there.batch_costs) for u in plan_units(few, there.batch_costs, 2))
        _assert_same(here.scores(few, progress=False), there.scores(few, progress=False), few)
        assert there.store.frame()["coalition"].is_unique
        assert set(there.store.frame()["device"]) == {cpu_label()}
        assert there.store.meta["device"] == f"ray: 2 x {cpu_label()}"
    finally:
        there.close()


def test_generation_equals_the_local_backend(local_ray, tmp_path: Path) -> None:
    """nq_open (generate_until) on two workers: each coalition's texts, near ties, exact match and gold
    log-likelihoods are those of this process."""
    setting = {"task": "nq_open", "limit": 4}
    here = build_scorer(_config(tmp_path / "local", **setting))
    there = build_scorer(_ray_config(tmp_path / "ray", **setting))
    coalitions = ["1" * 30, "1" * 3 + "0" + "1" * 26]
    try:
        ours = here.scores(coalitions, progress=False).set_index("coalition")
        theirs = there.scores(coalitions, progress=False).set_index("coalition")
    finally:
        there.close()
    for c in coalitions:
        assert list(theirs.at[c, "generations"]) == list(ours.at[c, "generations"])
        for column in ("near_ties", "score"):
            assert theirs.at[c, column] == ours.at[c, column]
        docs = json.loads(theirs.at[c, "doc_metrics"])
        assert (
            docs["exact_match,remove_whitespace"]
            == json.loads(ours.at[c, "doc_metrics"])["exact_match,remove_whitespace"]
        )
        np.testing.assert_allclose(docs["gold_loglik"], ours.at[c, "loglik"], rtol=1e-5)
        np.testing.assert_allclose(theirs.at[c, "loglik"], ours.at[c, "loglik"], rtol=1e-5)
    assert any(text.strip() for text in ours.at["1" * 30, "generations"])


def test_a_killed_worker_loses_nothing(local_ray, tmp_path: Path) -> None:
    scorer = build_scorer(_ray_config(tmp_path / "ray"))
    backend = scorer.backend
    run, killed = backend.run, []

    def run_and_kill(job, units, advance):
        for result in run(job, units, advance):
            if not killed:  # both workers hold queued units now: one of them dies with its units
                killed.append(backend.actors[0])
                ray.kill(backend.actors[0], no_restart=True)
            yield result

    backend.run = run_and_kill
    coalitions = ["1" * 30, *single_removals(30)[:15]]
    try:
        rows = scorer.scores(coalitions, progress=False)
        assert killed and killed[0] not in backend.actors and len(backend.actors) == 1
        stored = scorer.store.frame()
        assert stored["coalition"].is_unique and set(stored["coalition"]) == set(coalitions)
    finally:
        scorer.close()
    reference = build_scorer(_config(tmp_path / "local")).scores(coalitions, progress=False)
    _assert_same(reference, rows, coalitions)


def _listening(processes: list[psutil.Process]) -> set[str]:
    addresses = set()
    for process in processes:
        try:
            addresses |= {
                c.laddr.ip for c in process.net_connections("inet") if c.status == psutil.CONN_LISTEN
            }
        except psutil.Error:
            continue
    return addresses


def _until_new_part(
    command: list[str], parts: Path
) -> tuple[subprocess.Popen, list[psutil.Process], set[str]]:
    """Start the command; return once it has stored a new part, with its Ray processes and the
    addresses they listen on."""
    known = set(parts.iterdir()) if parts.is_dir() else set()
    # A shell's background job ignores SIGINT, and so would its children: give Ctrl-C back its default.
    driver = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen: dict[int, psutil.Process] = {}
    addresses: set[str] = set()
    deadline = time.monotonic() + 300
    while not (parts.is_dir() and set(parts.iterdir()) - known):
        assert driver.poll() is None, driver.stderr.read().decode()
        assert time.monotonic() < deadline, "no new part within 5 minutes"
        children = psutil.Process(driver.pid).children(recursive=True)
        seen |= {p.pid: p for p in children}
        addresses |= _listening(children)
        time.sleep(0.5)
    return driver, list(seen.values()), addresses


def _all_gone(processes: list[psutil.Process], within: float) -> None:
    gone_by = time.monotonic() + within
    while alive := [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]:
        assert time.monotonic() < gone_by, f"still running after {within} s: {[p.name() for p in alive]}"
        time.sleep(1)


def test_interrupted_or_killed_driver_resumes_and_leaves_no_ray_process(tmp_path: Path) -> None:
    """`lsi ablate --backend ray` started without an address: its instance listens on loopback only;
    stopped with Ctrl-C (SIGINT) or SIGTERM, or killed with SIGKILL, none of its processes survive; rerun, it
    finishes from the store, keeping what the stopped runs stored."""
    command = [
        str(Path(sys.executable).parent / "lsi"), "ablate",
        "--backend", "ray", "--workers", "2", "--threads", "1",
        "--task", "arc_easy", "--limit", "4", "--granularity", "block", "--dtype", "float32",
        "--results", str(tmp_path), "--json",
    ]  # fmt: skip
    parts = tmp_path / "scores/smollm2-135m/arc_easy/block-float32-limit4/parts"
    from lsi.store import ScoreStore

    driver, processes, addresses = _until_new_part(command, parts)
    assert len(processes) >= 4 and addresses  # GCS, raylet, the two workers, ...
    assert addresses <= {"127.0.0.1", "::1", "::ffff:127.0.0.1"}, addresses
    driver.send_signal(signal.SIGINT)
    assert driver.wait(timeout=60) == 130
    assert "rerun to resume" in driver.stderr.read().decode()
    _all_gone(processes, within=60)

    driver, processes, _ = _until_new_part(command, parts)
    driver.send_signal(signal.SIGTERM)  # a scheduler's stop: the same as Ctrl-C
    assert driver.wait(timeout=60) == 128 + signal.SIGTERM
    _all_gone(processes, within=60)

    driver, processes, _ = _until_new_part(command, parts)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    _all_gone(processes, within=120)
    before = ScoreStore.open(parts.parent).frame().set_index("coalition")["scored_at"]

    rerun = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stderr
    stored = ScoreStore.open(parts.parent).frame()
    assert stored["coalition"].is_unique and len(stored) == 31
    kept = stored.set_index("coalition")["scored_at"]
    assert len(before) >= 3 and (kept[before.index] == before).all()  # what the stopped runs stored


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--backend", "ray", "--workers", "0"], "workers must be an integer >= 1"),
        (["--workers", "2"], "--workers set with the local backend"),
        (["--backend", "ray", "--address", "127.0.0.1:9"], "no Ray cluster answers at 127.0.0.1:9"),
        (["--backend", "ray", "--address", "nonsense"], "--address must be 'auto' or host:port"),
    ],
)
def test_bad_cluster_options_are_one_line(argv: list[str], message: str, capsys) -> None:
    from lsi.cli import main

    assert main(["ablate", "--task", "arc_easy", "--limit", "2", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_placement_is_checked_against_the_cluster() -> None:
    from lsi.cluster import place

    assert place({"CPU": 8}, None, None, 2).workers == 4
    assert place({"CPU": 8, "GPU": 8}, None, 2, None).workers == 4
    assert place({"CPU": 8, "GPU": 8}, None, 2, None).device_map == "balanced"
    with pytest.raises(UserError, match="more than the cluster's 8 GPUs"):
        place({"CPU": 8, "GPU": 8}, None, 16, None)
    with pytest.raises(UserError, match="fits 2 workers"):
        place({"CPU": 2}, 3, None, 1)


def test_without_ray_the_backend_names_the_extra(tmp_path: Path) -> None:
    code = "import sys; sys.modules['ray'] = None; from lsi.cli import main; sys.exit(main(sys.argv[1:]))"
    args = ["ablate", "--backend", "ray", "--task", "arc_easy", "--limit", "2", "--results", str(tmp_path)]
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "pip install 'lsi[ray]'" in proc.stderr
