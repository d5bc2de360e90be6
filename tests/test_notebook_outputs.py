"""Executed notebooks lose their images and nothing else."""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from lsi.notebook_outputs import strip_images


def test_strip_images_keeps_text_parameters_and_metadata(tmp_path):
    cell = new_code_cell(
        "plot()",
        outputs=[
            new_output("stream", name="stdout", text="done\n"),
            new_output(
                "display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure size 640x480>"}
            ),
            new_output(
                "display_data", data={"image/svg+xml": "<svg/>"}, metadata={"image/svg+xml": {"w": 1}}
            ),
            new_output("execute_result", data={"text/plain": "0.5"}, execution_count=1),
        ],
    )
    parameters = new_code_cell("limit = 40", metadata={"tags": ["parameters"]})
    notebook = new_notebook(cells=[parameters, cell], metadata={"papermill": {"parameters": {"limit": 40}}})
    path = tmp_path / "run.ipynb"
    nbformat.write(notebook, path)
    assert strip_images(path) == 2
    back = nbformat.read(path, as_version=4)
    outputs = back.cells[1].outputs
    assert [o.output_type for o in outputs] == ["stream", "display_data", "execute_result"]
    assert outputs[1].data == {"text/plain": "<Figure size 640x480>"} and outputs[2].data == {
        "text/plain": "0.5"
    }
    assert back.cells[0] == notebook.cells[0] and back.metadata == notebook.metadata
    stripped = path.read_bytes()
    assert strip_images(path) == 0 and path.read_bytes() == stripped
