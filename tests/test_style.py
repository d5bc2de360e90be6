"""Saved figures: the PNG is matplotlib's rendering without its alpha channel, pixel for pixel, and
redrawing the same figure writes the same bytes (so unchanged results leave committed files alone)."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from lsi import style


def _figure() -> plt.Figure:
    style.apply()
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.imshow(np.linspace(0, 1, 64).reshape(8, 8), cmap="RdBu_r")  # a colormap: many shades
    ax.plot([0, 7], [0, 7], lw=0.7)  # anti-aliased edges
    return fig


def test_png_is_lossless_rgb_and_reproducible(tmp_path):
    fig = _figure()
    reference = io.BytesIO()
    fig.savefig(reference, format="png", dpi=style.PNG_DPI, facecolor="white")
    pdf, png = style.save(fig, tmp_path, "figure")
    assert pdf.read_bytes().startswith(b"%PDF")
    saved = Image.open(png)
    assert saved.mode == "RGB"
    expected = np.asarray(Image.open(reference))
    assert (expected[..., 3] == 255).all()
    np.testing.assert_array_equal(np.asarray(saved), expected[..., :3])
    first = png.read_bytes(), pdf.read_bytes()
    style.save(_figure(), tmp_path, "figure")
    assert (png.read_bytes(), pdf.read_bytes()) == first
