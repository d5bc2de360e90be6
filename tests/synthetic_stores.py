"""Metadata of synthetic score stores, as `lsi.provenance.store_meta` lays it out, for tests that
need a store without a model."""

from __future__ import annotations


def store_meta(n_players: int, documents: list[dict], metric: str = "acc_norm", chance: float = 0.5) -> dict:
    """A piqa-like float32 store over `n_players` blocks; `documents` hold gold, n_choices, choice_chars."""
    return {
        "format": 1,
        "weights_sha256": "x",
        "dtype": "float32",
        "task": "piqa",
        "split": "validation",
        "limit": len(documents),
        "granularity": "block",
        "players": [f"block.{i}" for i in range(n_players)],
        "lm_eval": "0.4.13",
        "metric": metric,
        "chance": chance,
        "majority_rate": chance,
        "documents": documents,
    }
