"""The key that kept benchmark results are checked against covers a sweep's included fragments."""

from __future__ import annotations

import shutil
from pathlib import Path

from benchmarks._sweep_key import sweep_key

ROOT = Path(__file__).resolve().parents[2]


def _sweep(tmp_path: Path) -> Path:
    """sweeps/mop_clip.yaml and its fragment, copied where the fragment is found beside it."""
    sweep = tmp_path / "sweep.yaml"
    shutil.copy(ROOT / "sweeps" / "mop_clip.yaml", sweep)
    shutil.copy(ROOT / "search_spaces" / "mop_clip.yaml", tmp_path / "mop_clip.yaml")
    return sweep


def test_an_edit_to_an_included_fragment_changes_the_key(tmp_path):
    sweep = _sweep(tmp_path)
    before = sweep_key(sweep)
    fragment = tmp_path / "mop_clip.yaml"
    fragment.write_text(fragment.read_text().replace("choice: [4, 8, 32]", "choice: [4, 8]"))
    assert sweep_key(sweep) != before


def test_a_comment_in_a_fragment_does_not_change_the_key(tmp_path):
    sweep = _sweep(tmp_path)
    before = sweep_key(sweep)
    fragment = tmp_path / "mop_clip.yaml"
    fragment.write_text("# a note\n" + fragment.read_text())
    assert sweep_key(sweep) == before


def test_an_edit_to_the_sweep_file_changes_the_key(tmp_path):
    sweep = _sweep(tmp_path)
    before = sweep_key(sweep)
    sweep.write_text(sweep.read_text().replace("num_samples: 20", "num_samples: 21"))
    assert sweep_key(sweep) != before
