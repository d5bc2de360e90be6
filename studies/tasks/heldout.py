"""Document selections for held-out tasks (piqa_heldout.yaml): the documents a study's stores never held."""

from __future__ import annotations

STUDY_LIMIT = 1000  # the study's stores hold the first 1000 documents of a split (`--limit 1000`)


def after_first_1000(dataset):  # noqa: ANN001, ANN201 - a datasets.Dataset, as lm-eval passes it
    """The split without the documents the study's stores hold."""
    return dataset.select(range(STUDY_LIMIT, len(dataset)))
