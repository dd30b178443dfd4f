"""Pictures for MLflow: which images each sub-prompt owns, and how alike the sub-prompts are.

The pictures a trial draws as it ends (the sub-prompt grid and heatmap) are one numpy
mosaic lettered with Pillow, a few ms each, so drawing them costs a trial almost nothing;
charts with axes (token shares) use matplotlib on the Agg backend (no display).

Example:
    >>> import numpy as np, tempfile
    >>> out = tempfile.mkdtemp()
    >>> similarity_heatmap(np.ones((2, 3, 3)), ["a", "b"], f"{out}/sim.png")  # doctest: +ELLIPSIS
    PosixPath('.../sim.png')
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: workers have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from collapsetune._atomic import atomic_path  # noqa: E402

__all__ = ["save_figure", "save_image", "similarity_heatmap", "subprompt_image_grid", "token_shares"]

# Pictures drawn inside a trial (the sub-prompt grid and heatmap) are laid out in numpy and
# lettered with Pillow: a matplotlib figure cost ~0.1-0.15 CPU-s each, about a report's
# training on MoP-CLIP (docs/benchmarks.md, section 15); this way one costs a few ms.
_PAD = 1  # pixels between images inside a cell
_GAP = 4  # pixels between cells
_INK = (30, 30, 30)
_EMPTY = 0.85  # grey: a sub-prompt that owns nothing
_LINE = 12  # pixels per line of text
_SMALL = 9  # font size of cell and panel titles
_MARGIN = 8
_BAR = 12  # colour bar width


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
    row with one full cell and empty (grey) ones. At most ``max_subprompts`` columns (large K).

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
    scale = 3 if h <= 16 else 1  # small images (8 x 8 digits) drawn bigger
    gap = max(_GAP, -(-_LINE // scale))  # room above each row for its column titles
    c, cols = len(class_names), min(k, max_subprompts)
    cell_h, cell_w = per_side * (h + _PAD), per_side * (w + _PAD)
    canvas = np.ones((c * (cell_h + gap), cols * (cell_w + _GAP), 3), dtype=np.float32)
    titles: list[tuple[int, int, str]] = []
    for ci in range(c):
        mine = np.flatnonzero(labels == ci)
        counts = np.bincount(assign[mine], minlength=k)
        order = np.argsort(-counts, kind="stable")[:cols]
        for col, sub in enumerate(order):
            y0, x0 = ci * (cell_h + gap) + gap, col * (cell_w + _GAP)
            canvas[y0:y0 + cell_h, x0:x0 + cell_w] = _EMPTY
            owned = mine[assign[mine] == sub]
            owned = owned[np.argsort(-scores[owned], kind="stable")][: per_side * per_side]
            for slot, idx in enumerate(owned):
                r, q = divmod(slot, per_side)
                yy, xx = y0 + r * (h + _PAD), x0 + q * (w + _PAD)
                canvas[yy:yy + h, xx:xx + w] = rgb[idx]
            share = counts[sub] / max(1, len(mine))
            titles.append(((x0 + cell_w // 2) * scale, y0 * scale, f"k{sub} {share:.0%}"))
    left = _MARGIN + max((_text_width(str(name)) for name in class_names), default=0)
    page = _page(_upscale(canvas, scale), left=left, top=2 * _LINE, right=_MARGIN, bottom=_MARGIN)
    draw = ImageDraw.Draw(page)
    draw.text((_MARGIN, _MARGIN // 2), f"images each sub-prompt owns (columns sorted by share){note}",
              fill=_INK, font=_font())
    for x, y, text in titles:
        draw.text((left + x, 2 * _LINE + y - 1), text, fill=_INK, font=_font(_SMALL), anchor="mb")
    for ci, name in enumerate(class_names):
        y = 2 * _LINE + (ci * (cell_h + gap) + gap + cell_h // 2) * scale
        draw.text((left - _MARGIN // 2, y), str(name), fill=_INK, font=_font(), anchor="rm")
    return save_image(page, path)


def similarity_heatmap(cosines: np.ndarray, class_names: Sequence[str], path: str | os.PathLike[str],
                       per_row: int = 5, note: str = "") -> Path:
    """One K x K panel per class: cosine between its sub-prompts (yellow everywhere = collapsed).

    Colours are viridis over [0, 1] (a bar at the right gives the scale); each panel's title
    gives the class and its mean off-diagonal cosine.

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
    scale = 2
    cell = max(1, 48 // k)  # pixels per matrix entry, so small K is still readable
    side = k * cell
    head = -(-_LINE // scale)  # room above each panel for its title
    rows = (c + per_row - 1) // per_row
    canvas = np.full((rows * (side + head + 2), min(c, per_row) * (side + 6)), np.nan, dtype=np.float32)
    for ci in range(c):
        r, q = divmod(ci, per_row)
        y0, x0 = r * (side + head + 2) + head, q * (side + 6)
        canvas[y0:y0 + side, x0:x0 + side] = np.kron(cos[ci], np.ones((cell, cell)))
    page = _page(_upscale(_viridis(canvas), scale), left=_MARGIN, top=2 * _LINE, right=_BAR + 6 * _MARGIN,
                 bottom=_MARGIN)
    draw = ImageDraw.Draw(page)
    draw.text((_MARGIN, _MARGIN // 2), f"sub-prompt cosine per class (mean off-diagonal){note}", fill=_INK,
              font=_font())
    for ci, name in enumerate(class_names):
        r, q = divmod(ci, per_row)
        mean_off = (cos[ci].sum() - np.trace(cos[ci])) / max(1, k * k - k)
        x, y = _MARGIN + (q * (side + 6) + side // 2) * scale, 2 * _LINE + (r * (side + head + 2) + head) * scale
        draw.text((x, y - 1), f"{name} ({mean_off:.2f})", fill=_INK, font=_font(_SMALL), anchor="mb")
    x0, y0, height = page.width - _BAR - 5 * _MARGIN, 2 * _LINE, page.height - 2 * _LINE - _MARGIN
    ramp = np.linspace(1.0, 0.0, height, dtype=np.float32)[:, None].repeat(_BAR, axis=1)  # 1 at the top
    page.paste(Image.fromarray(_bytes(_viridis(ramp))), (x0, y0))
    for value in (0.0, 0.5, 1.0):
        draw.text((x0 + _BAR + 3, y0 + round((1.0 - value) * (height - 1))), f"{value:.1f}", fill=_INK,
                  font=_font(_SMALL), anchor="lm")
    return save_image(page, path)


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
    try:
        with atomic_path(path) as tmp:  # MLflow never uploads half a PNG
            fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)
    return Path(path)


def save_image(image: Image.Image, path: str | os.PathLike[str]) -> Path:
    """Writes a Pillow `image` to `path` as PNG, atomically (folders made as needed)."""
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", compress_level=1)
    return Path(path)


@functools.lru_cache(maxsize=4)
def _font(size: int = 11) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size)  # Pillow's own font: no system fonts needed


def _text_width(text: str) -> int:
    return int(math.ceil(_font().getlength(text)))


def _bytes(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _upscale(rgb: np.ndarray, scale: int) -> np.ndarray:
    return rgb.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else rgb


def _page(rgb: np.ndarray, left: int, top: int, right: int, bottom: int) -> Image.Image:
    """A white page with `rgb` (floats in [0, 1]) pasted at (left, top)."""
    page = Image.new("RGB", (left + rgb.shape[1] + right, top + rgb.shape[0] + bottom), "white")
    page.paste(Image.fromarray(_bytes(rgb)), (left, top))
    return page


@functools.lru_cache(maxsize=1)
def _viridis_table() -> np.ndarray:
    return matplotlib.colormaps["viridis"](np.linspace(0.0, 1.0, 256))[:, :3].astype(np.float32)  # (256, 3)


def _viridis(values: np.ndarray) -> np.ndarray:
    """(H, W) values in [0, 1], NaN for background -> (H, W, 3) viridis, background white."""
    index = np.rint(np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0) * 255).astype(np.intp)
    rgb = _viridis_table()[index]
    rgb[np.isnan(values)] = 1.0
    return rgb
