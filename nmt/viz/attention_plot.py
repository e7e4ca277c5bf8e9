"""Attention heatmaps as matplotlib figures.

``plot_attention`` is the one plotting function: the plot CLI and TensorBoard logging both call it.
It builds a ``matplotlib.figure.Figure`` on an Agg canvas directly instead of going through pyplot,
so it never touches the global backend or pyplot's figure registry: plotting is thread safe and a
figure is freed as soon as the caller drops it.
"""

from __future__ import annotations

import io
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imread

from nmt.files import atomic_write

SAVE_FORMATS = ("png", "svg", "pdf")

# Figure size in inches: a fixed allowance for labels and colourbar plus a cell per token, clamped so
# a 2-token sentence still gets a readable plot and a 200-token one does not produce a poster.
_CELL_INCHES = 0.3
_CHAR_INCHES = 0.08  # width of one tick-label character, for the longest token label
_MIN_INCHES, _MAX_INCHES = 3.0, 30.0


def as_weight_array(weights) -> np.ndarray:
    """Return attention weights (a numpy array or torch tensor) as a float numpy array."""
    if isinstance(weights, torch.Tensor):
        weights = weights.detach().to("cpu", torch.float64).numpy()
    return np.asarray(weights, dtype=np.float64)


def weights_for(weights, tgt_labels: list[str], src_labels: list[str], what: str) -> np.ndarray:
    """`as_weight_array`, checked to have one row per target label and one column per source label;
    `what` names the labels in the error ("tokens", "pieces")."""
    weights = as_weight_array(weights)
    expected = (len(tgt_labels), len(src_labels))
    if weights.shape != expected:
        raise ValueError(
            f"attention weights have shape {tuple(weights.shape)} but the {what} give "
            f"(len(tgt_{what}), len(src_{what})) = {expected}"
        )
    return weights


def _figure_size(src_tokens: list[str], tgt_tokens: list[str]) -> tuple[float, float]:
    longest_src = max((len(t) for t in src_tokens), default=0)  # rotated labels eat height
    longest_tgt = max((len(t) for t in tgt_tokens), default=0)  # y labels eat width
    width = 2.0 + _CELL_INCHES * len(src_tokens) + _CHAR_INCHES * longest_tgt
    height = 1.0 + _CELL_INCHES * len(tgt_tokens) + _CHAR_INCHES * longest_src
    return (float(np.clip(width, _MIN_INCHES, _MAX_INCHES)), float(np.clip(height, _MIN_INCHES, _MAX_INCHES)))


def plot_attention(
    weights,
    src_tokens: list[str],
    tgt_tokens: list[str],
    *,
    title: str | None = None,
    vmax: float | None = None,
    ax=None,
    colorbar: bool = True,
) -> Figure:
    """Draw attention weights as a heatmap and return the figure.

    Args:
        weights: (T, S) array or tensor; row t is the attention target token t pays to the source.
        src_tokens: the S source tokens, written along the top x axis.
        tgt_tokens: the T target tokens, written down the y axis.
        title: optional axes title.
        vmax: top of the colour scale (bottom is 0); default 1.0 so plots are comparable.
        ax: draw into these axes (and their figure) instead of a new figure; the figure's size and
            layout are then left to the caller.
        colorbar: draw a colourbar beside the axes (off when the caller draws one shared bar).
    """
    weights = weights_for(weights, tgt_tokens, src_tokens, "tokens")
    vmax = 1.0 if vmax is None else float(vmax)
    if vmax <= 0:
        raise ValueError(f"vmax must be positive, got {vmax}")

    own_figure = ax is None
    if own_figure:
        fig = Figure(figsize=_figure_size(src_tokens, tgt_tokens))
        FigureCanvasAgg(fig)  # attaches itself as fig.canvas: rendering without pyplot or a GUI
        ax = fig.add_subplot()
    else:
        fig = ax.get_figure()

    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto", interpolation="nearest")
    ax.xaxis.tick_top()
    ax.set_xticks(range(len(src_tokens)), labels=src_tokens, rotation=90)
    ax.set_yticks(range(len(tgt_tokens)), labels=tgt_tokens)
    ax.tick_params(length=0)
    if title is not None:
        # Wrapped to the width available (about 11 characters per inch at 10 pt), or small
        # plots would cut it off; matplotlib places it above the top tick labels.
        inches = fig.get_figwidth() * (1.0 if own_figure else ax.get_position().width)
        chars = max(20, int(inches * 11))
        ax.set_title(textwrap.fill(title, width=chars), fontsize=10)
    if colorbar:
        fig.colorbar(image, ax=ax)
    if own_figure:
        fig.tight_layout()
    return fig


@dataclass
class Panel:
    """One heatmap of a comparison figure: (T, S) weights and their labels."""

    weights: np.ndarray
    src_tokens: list[str]
    tgt_tokens: list[str]
    title: str | None = None


def plot_attention_grid(
    panels: list[Panel], *, columns: int = 1, vmax: float | None = None, title: str | None = None
) -> Figure:
    """Several heatmaps in one figure, filled row by row, on one shared colour scale.

    Args:
        panels: the heatmaps, in reading order (left to right, then top to bottom).
        columns: panels per row.
        vmax: top of the shared colour scale; default the largest weight of any panel, so the
            panels are comparable with each other (pass 1.0 to compare with other figures too).
        title: optional title over the whole figure.
    """
    if not panels:
        raise ValueError("no panels to plot")
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    columns = min(columns, len(panels))
    rows = -(-len(panels) // columns)
    weights = [as_weight_array(p.weights) for p in panels]
    if vmax is None:
        vmax = max((float(w.max()) for w in weights if w.size), default=1.0) or 1.0
    # Each grid column is as wide as its widest panel and each row as tall as its tallest one.
    sizes = [_figure_size(p.src_tokens, p.tgt_tokens) for p in panels]
    widths = [max(sizes[i][0] for i in range(c, len(panels), columns)) for c in range(columns)]
    heights = [max(sizes[i][1] for i in range(r * columns, min((r + 1) * columns, len(panels))))
               for r in range(rows)]
    fig = Figure(figsize=(sum(widths) + 1.0, sum(heights) + (0.5 if title else 0.0)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False, width_ratios=widths, height_ratios=heights)  # (R, C)
    for ax, panel, w in zip(axes.flat, panels, weights, strict=False):
        plot_attention(w, panel.src_tokens, panel.tgt_tokens, title=panel.title, vmax=vmax, ax=ax,
                       colorbar=False)
    for ax in axes.flat[len(panels):]:
        ax.set_axis_off()
    fig.colorbar(axes.flat[0].get_images()[0], ax=axes.ravel().tolist(), shrink=0.8)
    if title is not None:
        fig.suptitle(title)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` to ``path`` in the format its suffix names (png, svg or pdf).

    Parent directories are created. The figure goes to a temporary file next to the target that is
    then renamed over it, so a reader never sees a half-written file. Returns the path.
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in SAVE_FORMATS:
        raise ValueError(
            f"cannot save a figure as {path.name!r}: the suffix must be one of {list(SAVE_FORMATS)}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as file:
        fig.savefig(file, format=fmt)
    return path


def figure_to_image_array(fig: Figure) -> np.ndarray:
    """Render ``fig`` to an (H, W, 3) uint8 RGB array, the layout TensorBoard's ``add_image`` takes
    with ``dataformats="HWC"``."""
    if isinstance(fig.canvas, FigureCanvasAgg):
        fig.canvas.draw()
        rgba = np.asarray(fig.canvas.buffer_rgba())  # (H, W, 4) uint8
        return np.ascontiguousarray(rgba[..., :3])
    # A figure on some other canvas (e.g. made by pyplot): render through PNG rather than replace
    # the caller's canvas. PNG is lossless 8-bit, so the round trip is exact.
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    buffer.seek(0)
    rgba = imread(buffer, format="png")  # (H, W, 4) float in [0, 1]
    return np.round(rgba[..., :3] * 255).astype(np.uint8)
