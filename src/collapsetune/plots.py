"""Pictures for MLflow: which images each sub-prompt owns, and how alike the sub-prompts are.

Matplotlib with the Agg backend (no display). Each picture is composed as one numpy
mosaic and drawn on a single Axes, so a figure costs ~0.1 s and a wrapper can draw it
during a sweep without slowing trials down.

Example:
    >>> import numpy as np, tempfile
    >>> out = tempfile.mkdtemp()
    >>> similarity_heatmap(np.ones((2, 3, 3)), ["a", "b"], f"{out}/sim.png")  # doctest: +ELLIPSIS
    PosixPath('.../sim.png')
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: workers have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["save_figure", "similarity_heatmap", "subprompt_image_grid", "token_shares"]

_PAD = 1  # pixels between images inside a cell
_GAP = 4  # pixels between cells


def _to_rgb(images: np.ndarray) -> np.ndarray:
    """(N, H, W[, 3]) in [0, 1] or 0..255 -> (N, H, W, 3) float in [0, 1], digits drawn dark on light."""
    x = np.asarray(images, dtype=np.float32)
    if x.max() > 1.0:
        x = x / 255.0
    if x.ndim == 3:  # grey: ink is high, so invert for dark strokes on paper
        x = np.repeat((1.0 - x)[..., None], 3, axis=-1)
    return np.clip(x, 0.0, 1.0)


def subprompt_image_grid(
    images: np.ndarray,
    labels: np.ndarray,
    assign: np.ndarray,
    scores: np.ndarray,
    k: int,
    class_names: Sequence[str],
    path: str | os.PathLike[str],
    per_side: int = 3,
    max_subprompts: int = 8,
    note: str = "",
) -> Path:
    """One row per class, one cell per sub-prompt: the images that sub-prompt owns.

    Cells show up to ``per_side**2`` owned images, closest first; sub-prompts are sorted by
    how many images they own (column titles give index and share), so a collapsed class is a
    row with one full cell and empty ones. At most ``max_subprompts`` columns (large K).

    Args:
        images: (N, H, W) or (N, H, W, 3) pixels.
        labels: (N,) classes.
        assign: (N,) owning sub-prompt of each image, in [0, k).
        scores: (N,) similarity to its owner (orders images within a cell).
        k: Sub-prompts per class.
        class_names: (C,) row labels.
        path: The PNG to write.
        per_side: Images per cell side.
        max_subprompts: Columns drawn.
        note: Appended to the title, e.g. the report it shows.

    Returns:
        The path written.
    """
    rgb = _to_rgb(images)
    n, h, w, _ = rgb.shape
    c, cols = len(class_names), min(k, max_subprompts)
    cell_h, cell_w = per_side * (h + _PAD), per_side * (w + _PAD)
    canvas = np.ones((c * (cell_h + _GAP), cols * (cell_w + _GAP), 3), dtype=np.float32)
    titles: list[tuple[float, float, str]] = []
    for ci in range(c):
        mine = np.flatnonzero(labels == ci)
        counts = np.bincount(assign[mine], minlength=k)
        order = np.argsort(-counts, kind="stable")[:cols]
        for col, sub in enumerate(order):
            y0, x0 = ci * (cell_h + _GAP), col * (cell_w + _GAP)
            canvas[y0:y0 + cell_h, x0:x0 + cell_w] = 0.85  # grey = nothing owned
            owned = mine[assign[mine] == sub]
            owned = owned[np.argsort(-scores[owned], kind="stable")][: per_side * per_side]
            for slot, idx in enumerate(owned):
                r, q = divmod(slot, per_side)
                yy, xx = y0 + r * (h + _PAD), x0 + q * (w + _PAD)
                canvas[yy:yy + h, xx:xx + w] = rgb[idx]
            share = counts[sub] / max(1, len(mine))
            titles.append((x0 + cell_w / 2, y0 - 0.5, f"k{sub} {share:.0%}"))
    scale = 0.022 if h <= 16 else 0.006  # inches per pixel: small images drawn bigger
    fig = plt.figure(figsize=(max(4.0, canvas.shape[1] * scale + 1.2), canvas.shape[0] * scale + 0.6))
    ax = fig.add_axes((0.1, 0.02, 0.88, 0.9))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([(cell_h + _GAP) * ci + cell_h / 2 for ci in range(c)], list(class_names), fontsize=6)
    for x, y, text in titles:
        ax.text(x, y, text, ha="center", va="bottom", fontsize=4)
    ax.set_title(f"images each sub-prompt owns (columns sorted by share){note}", fontsize=7, pad=8)
    return save_figure(fig, path)


def similarity_heatmap(cosines: np.ndarray, class_names: Sequence[str], path: str | os.PathLike[str],
                       per_row: int = 5, note: str = "") -> Path:
    """One K x K panel per class: cosine between its sub-prompts (1 everywhere = collapsed).

    Args:
        cosines: (C, K, K) same-class sub-prompt cosines.
        class_names: (C,) panel titles.
        path: The PNG to write.
        per_row: Panels per row.
        note: Appended to the title.

    Returns:
        The path written.
    """
    cos = np.asarray(cosines, dtype=np.float32)
    c, k, _ = cos.shape
    cell = max(1, 48 // k)  # pixels per matrix entry, so small K is still readable
    side = k * cell
    rows = (c + per_row - 1) // per_row
    canvas = np.full((rows * (side + 12), min(c, per_row) * (side + 6)), np.nan, dtype=np.float32)
    for ci in range(c):
        r, q = divmod(ci, per_row)
        y0, x0 = r * (side + 12) + 10, q * (side + 6)
        canvas[y0:y0 + side, x0:x0 + side] = np.kron(cos[ci], np.ones((cell, cell)))
    fig = plt.figure(figsize=(canvas.shape[1] / 40 + 1.4, canvas.shape[0] / 40 + 0.6))
    ax = fig.add_axes((0.02, 0.03, 0.8, 0.88))
    image = ax.imshow(np.ma.masked_invalid(canvas), cmap="viridis", vmin=0.0, vmax=1.0,
                      interpolation="nearest")
    ax.set_axis_off()
    for ci, name in enumerate(class_names):
        r, q = divmod(ci, per_row)
        mean_off = (cos[ci].sum() - np.trace(cos[ci])) / max(1, k * k - k)
        ax.text(q * (side + 6) + side / 2, r * (side + 12) + 9, f"{name} ({mean_off:.2f})",
                ha="center", va="bottom", fontsize=5)
    fig.colorbar(image, cax=fig.add_axes((0.85, 0.1, 0.03, 0.75))).ax.tick_params(labelsize=6)
    ax.set_title(f"sub-prompt cosine per class (mean off-diagonal){note}", fontsize=7)
    return save_figure(fig, path)


def token_shares(panels: Sequence[tuple[str, Sequence[str], np.ndarray]], path: str | os.PathLike[str],
                 top: int = 20, note: str = "") -> Path:
    """One bar panel per token stream: its ``top`` most frequent tokens and their shares.

    A collapsed language model shows as one or two tall bars and few distinct tokens.

    Args:
        panels: (title, token labels, shares) per stream, labels and shares sorted by share,
            most frequent first; shares sum to 1 over all of a stream's distinct tokens.
        path: The PNG to write.
        top: Bars drawn per panel.
        note: Appended to the title, e.g. the report it shows.

    Returns:
        The path written.
    """
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(4.2 * max(1, len(panels)), 3.2), squeeze=False)
    for ax, (title, labels, shares) in zip(axes[0], panels):
        shares = np.asarray(shares, dtype=np.float64)
        shown = min(top, len(shares))
        ax.bar(np.arange(shown), shares[:shown], color="tab:blue")
        ax.set_xticks(np.arange(shown), [str(label)[:12] for label in labels[:shown]], rotation=90, fontsize=6)
        ax.set_ylim(0.0, 1.0)
        ax.set_ylabel("share of tokens", fontsize=7)
        top1 = f", top-1 {shares[0]:.0%}" if len(shares) else ""
        ax.set_title(f"{title}\n{len(shares)} distinct{top1}", fontsize=7)
        ax.tick_params(axis="y", labelsize=6)
    fig.suptitle(f"most frequent tokens{note}", fontsize=8)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.25, top=0.8, wspace=0.25)  # tight_layout costs ~0.3 s
    return save_figure(fig, path)


def save_figure(fig: plt.Figure, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Writes `fig` to `path` atomically (folders made as needed) and closes it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")  # atomic: MLflow never uploads half a PNG
    try:
        fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)
    os.replace(tmp, path)
    return path
