"""benchmarks/bench_gpu.py on a tiny random Llama on CPU: both paths are timed, and lsi in float32 gives
the paper path's log-likelihoods (the check a GPU run repeats at Llama-3-8B scale)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu.py"


def _bench_gpu():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_run_times_both_paths_and_float32_matches_the_paper_path(tmp_path):
    out = tmp_path / "bench.json"
    _bench_gpu().main(["--tiny", "--device", "cpu", "--json", str(out)])
    report = json.loads(out.read_text())

    paper, same, every = report["paths"].values()
    for figures in (paper, same, every):
        assert figures["seconds"] > 0 and figures["tokens_per_s"] > 0 and figures["executed_tflop"] > 0
        assert figures["speedup"] > 0 and figures["projected_study_hours"] > 0
    assert paper["coalitions"] == same["coalitions"] < every["coalitions"] == 22  # 8 players, windows of 1..3
    # Skipping and scoring only continuation positions: lsi runs fewer matmul FLOPs on the same coalitions.
    assert same["executed_tflop"] < paper["executed_tflop"]

    check = report["fp32_check"]
    paper_ll, lsi_ll = np.array(check["paper"]), np.array(check["lsi"])
    assert paper_ll.shape == lsi_ll.shape == (2, report["requests"])
    np.testing.assert_allclose(lsi_ll, paper_ll, atol=1e-4, rtol=0)
    # The comparison can tell coalitions apart: removing one sub-layer moves log-likelihoods far more.
    assert check["coalitions"][0] != check["coalitions"][1]
    assert np.abs(paper_ll[0] - paper_ll[1]).max() > 1e-2
    assert check["passed"]
