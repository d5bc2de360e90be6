"""Executed notebooks as small as they render, so that committed results stay small.

Two things are dropped. The base64 images: the figures an executed notebook draws are also written
under figures/, and they were two thirds of the executed notebooks' bytes. And the intermediate states
of progress bars: papermill records every tqdm refresh as an output of its own, each rewriting its line
after a carriage return, where JupyterLab shows adjacent stream outputs as one text with each line at
its last state; that is what is kept (about 30% of the text-only notebooks' bytes). Everything else
(parameters, papermill metadata, printed text, tables, each figure's text/plain line) stays as the run
left it.
"""

from __future__ import annotations

from pathlib import Path

import nbformat


def rendered_stream(text: str) -> str:
    """Each line at its last state, as a notebook front end shows it: the text after the line's last
    carriage return (a return that ends the line overwrites nothing yet)."""
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n"))


def _without_images(outputs: list) -> tuple[list, int]:
    kept, removed = [], 0
    for output in outputs:
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
    return kept, removed


def _same_stream(output, name: str) -> bool:
    return output is not None and output.output_type == "stream" and output.name == name


def _streams_merged(outputs: list) -> tuple[list, int]:
    merged: list = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if output.output_type == "stream" and _same_stream(previous, output.name):
            previous.text += output.text
            continue
        merged.append(output)
    changed = len(outputs) - len(merged)
    for output in merged:
        if output.output_type == "stream":
            text = rendered_stream(output.text)
            changed += text != output.text
            output.text = text
    return merged, changed


def compact_outputs(path: Path) -> int:
    """Remove the image/* entries of every output in the notebook at `path` (and the outputs left with
    no data), and merge adjacent stream outputs of one name into the text they render as. Rewrites the
    file only when something changed, and returns how many images, outputs and texts changed."""
    notebook = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    changed = 0
    for cell in notebook.cells:
        if "outputs" not in cell:
            continue
        outputs, images = _without_images(cell.outputs)
        cell.outputs, streams = _streams_merged(outputs)
        changed += images + streams
    if changed:  # as papermill writes it (nbformat.write would add a final newline)
        Path(path).write_text(nbformat.writes(notebook), encoding="utf-8")
    return changed
