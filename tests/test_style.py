"""Saved figures: the PNG is matplotlib's rendering in a 256-colour palette, exact for a figure of at
most 256 colours and nearly so for one with more, and redrawing the same figure writes the same bytes
(so unchanged results leave committed files alone)."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from lsi import style


def _figure(shades: int) -> plt.Figure:
    style.apply()
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.imshow(np.linspace(0, 1, shades).reshape(8, -1), cmap="RdBu_r", interpolation="nearest")
    if shades > 64:
        ax.plot([0, 7], [0, 7], lw=0.7)  # anti-aliased edges: more colours than a palette holds
    ax.set_axis_off()
    return fig


def _saved_and_rendered(fig: plt.Figure, folder) -> tuple[np.ndarray, np.ndarray, Image.Image]:
    reference = io.BytesIO()
    fig.savefig(reference, format="png", dpi=style.PNG_DPI, facecolor="white")
    pdf, png = style.save(fig, folder, "figure")
    assert pdf.read_bytes().startswith(b"%PDF")
    expected = np.asarray(Image.open(reference))
    assert (expected[..., 3] == 255).all()
    saved = Image.open(png)
    return np.asarray(saved.convert("RGB")).astype(int), expected[..., :3].astype(int), saved


def test_png_of_few_colours_is_exact(tmp_path):
    fig = _figure(8)
    got, expected, saved = _saved_and_rendered(fig, tmp_path)
    assert len(np.unique(expected.reshape(-1, 3), axis=0)) <= style.PNG_COLORS
    assert saved.mode == "P"
    np.testing.assert_array_equal(got, expected)


def test_png_of_many_colours_moves_only_edges_and_is_reproducible(tmp_path):
    got, expected, saved = _saved_and_rendered(_figure(800), tmp_path)
    assert len(np.unique(expected.reshape(-1, 3), axis=0)) > style.PNG_COLORS
    assert saved.mode == "P"
    error = np.abs(got - expected).max(axis=2)
    assert (error > 16).mean() < 0.005, "more than edges moved"
    assert np.abs(got - expected).mean() < 1.0
    first = (tmp_path / "figure.png").read_bytes(), (tmp_path / "figure.pdf").read_bytes()
    style.save(_figure(800), tmp_path, "figure")
    assert ((tmp_path / "figure.png").read_bytes(), (tmp_path / "figure.pdf").read_bytes()) == first
