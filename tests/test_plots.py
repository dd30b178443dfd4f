"""The pictures a trial draws: read back as pixels, they show what their docstrings say."""

from __future__ import annotations

import numpy as np
from PIL import Image

from collapsetune import plots

GREY = (217, 217, 217)  # plots._EMPTY as a byte: a sub-prompt that owns nothing
YELLOW, PURPLE = (253, 231, 37), (68, 1, 84)  # viridis at 1 and at 0


def _count(path, colour) -> int:
    pixels = np.asarray(Image.open(path).convert("RGB"))
    return int((pixels == np.array(colour, dtype=np.uint8)).all(axis=-1).sum())


def _grid(tmp_path, assign: np.ndarray, name: str):
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    images = np.ones((8, 8, 8), dtype=np.float32)  # all ink: drawn black, never grey
    return plots.subprompt_image_grid(images, labels, assign, np.linspace(1, 0, 8), 2, ["zero", "one"],
                                      tmp_path / name, per_side=1)


def test_a_collapsed_class_is_one_full_cell_and_grey_empty_ones(tmp_path):
    healthy = _grid(tmp_path, np.array([0, 1, 0, 1, 0, 1, 0, 1]), "healthy.png")
    collapsed = _grid(tmp_path, np.array([0, 0, 0, 0, 0, 1, 0, 1]), "collapsed.png")  # class 0: all k0

    image_px = (8 * 3) ** 2  # one 8 x 8 image, drawn 3x
    assert _count(collapsed, GREY) - _count(healthy, GREY) >= 0.9 * image_px
    assert Image.open(collapsed).format == "PNG"
    # Written atomically: only the two pictures, no temporary file (`.<name>.<random>.png`) left.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["collapsed.png", "healthy.png"]


def test_the_heatmap_is_yellow_where_sub_prompts_coincide(tmp_path):
    cos = np.stack([np.ones((2, 2)), np.eye(2)])  # class 0 collapsed, class 1 apart
    path = plots.similarity_heatmap(cos, ["same", "apart"], tmp_path / "sim.png")

    entry_px = (48 // 2 * 2) ** 2  # one matrix entry: 24 pixels, drawn 2x
    assert _count(path, YELLOW) >= 6 * entry_px  # all of class 0, the diagonal of class 1
    assert 2 * entry_px <= _count(path, PURPLE) < 3 * entry_px  # class 1's off-diagonal (and the bar's end)


def test_pictures_land_in_folders_that_do_not_exist_yet(tmp_path):
    path = plots.similarity_heatmap(np.ones((1, 3, 3)), ["a"], tmp_path / "a" / "b" / "sim.png", note=" - r 1")
    assert path.read_bytes()[:4] == b"\x89PNG"
