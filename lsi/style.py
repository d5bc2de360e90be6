"""One look for every figure: paper column widths, readable small fonts, one colour per player kind.

Call `apply()` once (the figure functions do) so notebooks, the CLI and benchmarks draw alike.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns
from PIL import Image

COLUMN_WIDTH = 3.3  # inches: one column of a two-column (ACL) paper
PAGE_WIDTH = 6.9  # inches: both columns
PNG_DPI = 150
PNG_COLORS = 256  # a PNG palette's most

# The paper's colours: attention red, FFN blue; MoE FFNs purple, whole blocks grey.
KIND_COLORS = {"attn": "#d62728", "mlp": "#1f77b4", "moe": "#9467bd", "block": "#555555"}
KIND_LABELS = {"attn": "attention", "mlp": "FFN", "moe": "MoE FFN", "block": "block"}


def apply() -> None:
    """Seaborn's paper context with fonts that stay legible at column width."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=0.85)
    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 200,  # what rasterised parts of a PDF get; the PNG has its own
            "savefig.bbox": "tight",
            "axes.titlesize": 8,
            "axes.labelsize": 7.5,
            "xtick.labelsize": 6.5,
            "ytick.labelsize": 6.5,
            "legend.fontsize": 6.5,
            "figure.titlesize": 8.5,
            "grid.linewidth": 0.4,
            "pdf.fonttype": 42,  # editable text in the PDFs
        }
    )


def kind_of(player: str) -> str:
    """'attn.3' -> 'attn'."""
    return player.partition(".")[0]


def save(fig: plt.Figure, folder: Path, stem: str) -> list[Path]:
    """Write the figure as PDF (for papers) and PNG (for READMEs), and close it.

    No creation date is embedded, so redrawing unchanged results leaves the files byte-identical. The
    PNG is rendered at 150 dpi (sharp on a screen, about half the bytes of 200 dpi) and stored as a
    256-colour palette (median cut, no dithering): a plot's colours are its colormap's 256 and a few
    line colours, so only anti-aliased edges move, about one pixel in a thousand by more than 16
    levels, and the file is about 60% smaller than opaque RGB. A figure of at most 256 colours is kept
    exactly. Both matter under the repository's size cap (`tests/test_repo_size.py`).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pdf, png = folder / f"{stem}.pdf", folder / f"{stem}.png"
    fig.savefig(pdf, metadata={"CreationDate": None})
    rendered = io.BytesIO()
    fig.savefig(rendered, format="png", dpi=PNG_DPI, facecolor="white")
    palette = (
        Image.open(rendered)
        .convert("RGB")
        .quantize(PNG_COLORS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    )
    palette.save(png, optimize=True)
    plt.close(fig)
    return [pdf, png]
