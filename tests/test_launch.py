from __future__ import annotations

from pathlib import Path

from collapsetune.launch import rung_warnings
from collapsetune.spec import load_sweep

ROOT = Path(__file__).parents[1]


def test_rung_warnings_when_asha_rung_precedes_rule_verdict():
    spec = load_sweep(ROOT / "sweeps" / "bitnet_lm.yaml", ["scheduler.grace_period=3"])
    (warning,) = rung_warnings(spec)
    assert "grace_period=3 comes before report 9" in warning and "set grace_period >= 9" in warning


def test_rung_warnings_silent_for_shipped_sweeps_and_fifo():
    assert rung_warnings(load_sweep(ROOT / "sweeps" / "bitnet_lm.yaml")) == []
    assert rung_warnings(load_sweep(ROOT / "sweeps" / "smoke.yaml")) == []
    assert rung_warnings(load_sweep(ROOT / "sweeps" / "smoke.yaml", ["scheduler={type: fifo}"])) == []
