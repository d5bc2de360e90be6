"""Executed notebooks lose their images and the intermediate states of their progress bars, and
nothing a notebook front end would show."""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from lsi.notebook_outputs import compact_outputs, rendered_stream


def test_images_go_and_text_parameters_and_metadata_stay(tmp_path):
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
    assert compact_outputs(path) == 2
    back = nbformat.read(path, as_version=4)
    outputs = back.cells[1].outputs
    assert [o.output_type for o in outputs] == ["stream", "display_data", "execute_result"]
    assert outputs[0].text == "done\n"
    assert outputs[1].data == {"text/plain": "<Figure size 640x480>"} and outputs[2].data == {
        "text/plain": "0.5"
    }
    assert back.cells[0] == notebook.cells[0] and back.metadata == notebook.metadata
    compacted = path.read_bytes()
    assert compact_outputs(path) == 0 and path.read_bytes() == compacted


def test_a_progress_bar_keeps_its_last_state_and_streams_merge_only_when_adjacent(tmp_path):
    bar = [f"\rloading: {p:3d}%|" for p in (0, 40, 100)]
    cell = new_code_cell(
        "run()",
        outputs=[
            new_output("stream", name="stderr", text="warning: slow\n"),
            *(new_output("stream", name="stderr", text=b) for b in bar),
            new_output("stream", name="stderr", text="\n"),
            new_output("stream", name="stdout", text="scored 3\n"),
            new_output("execute_result", data={"text/plain": "1"}, execution_count=1),
            new_output("stream", name="stderr", text="\rpart 1\rpart 2\r"),
        ],
    )
    path = tmp_path / "run.ipynb"
    nbformat.write(new_notebook(cells=[cell]), path)
    assert compact_outputs(path) > 0
    outputs = nbformat.read(path, as_version=4).cells[0].outputs
    assert [(o.output_type, o.get("name")) for o in outputs] == [
        ("stream", "stderr"),
        ("stream", "stdout"),
        ("execute_result", None),
        ("stream", "stderr"),
    ]
    assert outputs[0].text == "warning: slow\nloading: 100%|\n"
    assert outputs[1].text == "scored 3\n" and outputs[3].text == "part 2"


def test_rendered_stream_follows_carriage_returns_line_by_line():
    assert rendered_stream("a\rb\nc") == "b\nc"
    assert rendered_stream("kept\r") == "kept"  # nothing has overwritten it yet
    assert rendered_stream("x\r\ny\r\n") == "x\ny\n"  # Windows line ends
    assert rendered_stream("plain text\n") == "plain text\n"
