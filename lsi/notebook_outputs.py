"""Executed notebooks without their images, so that committed results stay small.

The figures an executed notebook draws are also written under figures/, and the base64 PNGs in its
outputs were two thirds of the executed notebooks' bytes. Everything else (parameters, papermill
metadata, printed text, tables, each figure's text/plain line) stays as the run left it.
"""

from __future__ import annotations

from pathlib import Path

import nbformat


def strip_images(path: Path) -> int:
    """Remove the image/* entries of every output in the notebook at `path`, and the outputs left with
    no data; rewrites the file only when something was removed, and returns how many entries were."""
    notebook = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    removed = 0
    for cell in notebook.cells:
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data")
            if data is not None:
                images = [kind for kind in data if kind.startswith("image/")]
                for kind in images:
                    del data[kind]
                    output.get("metadata", {}).pop(kind, None)
                removed += len(images)
                if not data:
                    continue
            kept.append(output)
        if "outputs" in cell:
            cell.outputs = kept
    if removed:  # as papermill writes it (nbformat.write would add a final newline)
        Path(path).write_text(nbformat.writes(notebook), encoding="utf-8")
    return removed
