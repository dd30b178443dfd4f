"""sweeps/seed_table.yaml holds exactly seeds/003's seven settings, and the table code
(benchmarks/seed_table.py) reads trajectories right. No training."""

from __future__ import annotations

import math
from pathlib import Path

from benchmarks import seed_table
from collapsetune.spec import load_sweep
from trainables.bitnet_lm import BitNetLMConfig

ROOT = Path(__file__).resolve().parents[2]

OFF = {"label_smoothing": 0.0, "maxsup_start": 0.0, "maxsup_end": 0.0, "confidence_penalty": 0.0,
       "vocab_bonus": 0.0, "output_l2": 0.0}
EXPECTED = {  # table row name -> the point's values
    "standard LR": {**OFF, "lr": 3e-3},
    "reduced LR": {**OFF, "lr": 3e-4},
    "reduced LR + label smoothing 0.1": {**OFF, "lr": 3e-4, "label_smoothing": 0.1},
    "reduced LR + confidence penalty 0.2": {**OFF, "lr": 3e-4, "confidence_penalty": 0.2},
    "reduced LR + vocabulary bonus 0.5": {**OFF, "lr": 3e-4, "vocab_bonus": 0.5},
    "reduced LR + output L2 0.01": {**OFF, "lr": 3e-4, "output_l2": 1e-2},
    "reduced LR + MaxSup 0.1->0.2": {**OFF, "lr": 3e-4, "maxsup_start": 0.1, "maxsup_end": 0.2},
}


def test_seed_table_sweep_is_the_seven_settings_run_whole() -> None:
    spec = load_sweep(ROOT / "sweeps" / "seed_table.yaml")
    points = [dict(p) for p in spec.search.points_to_evaluate]
    assert {seed_table.setting_name(p): p for p in points} == EXPECTED
    assert spec.num_samples == len(points) == 7  # random search adds no trial of its own
    assert spec.search.algorithm == "random"
    assert spec.scheduler.type == "fifo" and spec.collapse == ()  # nothing stops a trial early
    assert spec.max_iterations * spec.config["steps_per_report"] == max(seed_table.STEPS)
    assert spec.config["weight_decay"] == 0.1
    assert seed_table.STANDARD_LR == BitNetLMConfig().lr


def test_recovery_labels() -> None:
    assert seed_table.recovery([3, 8, 12, 20, 40]) == "yes"
    assert seed_table.recovery([3, 40, 12, 10, 11]) == "no"
    assert seed_table.recovery([3, 20, 30, 16]) == "never collapsed"  # report 1 does not count
    assert seed_table.recovery([3, 20, 14, 15]) == "yes"  # 15 is at the threshold, not below


def test_value_at_step_and_table_row() -> None:
    steps = [50 * i for i in range(1, 13)]
    unique = [2, 3, 4, 9, 12, 14, 16, 20, 25, 30, 35, 41]
    reports = {"collapse/unique_tokens": unique, "collapse/argmax_unique": [u + 1 for u in unique],
               "val/loss": [7.0 - 0.1 * i for i in range(12)]}
    assert seed_table.value_at(steps, unique, 150) == 4
    assert seed_table.value_at(steps, unique, 600) == 41
    assert math.isnan(seed_table.value_at(steps[:5], unique[:5], 300))  # stopped before step 300

    trial = {"setting": "reduced LR", "lr": 3e-4, "steps": steps, "reports": reports}
    header, rule, row = seed_table.make_table([trial]).splitlines()
    assert header.count("|") == rule.count("|") == row.count("|")
    assert row == "| reduced LR | 0.0003 | 4 | 14 | 41 | 5 | 15 | 42 | yes | 6.80 | 5.90 |"
