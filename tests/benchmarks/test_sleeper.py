"""benchmarks/_sleeper.py: the wrapper the driver benchmarks run meets the wrapper contract
and says what its worker holds."""

from __future__ import annotations

from pathlib import Path

from collapsetune.registry import resolve_trainable
from collapsetune.registry import has_state

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_sleeper_reports_its_sleep_and_memory_and_round_trips_its_state():
    sleeper_cls = resolve_trainable("_sleeper:Sleeper", [BENCHMARKS])
    assert has_state(sleeper_cls) and not hasattr(sleeper_cls, "samples")
    first = sleeper_cls({"seconds": 0.01})
    report = first.step()
    assert report["bench/t1"] - report["bench/t0"] >= 0.01
    assert 0 < report["bench/anon_mib"] < report["bench/rss_mib"]
    assert report["bench/torch"] in (0.0, 1.0)
    again = sleeper_cls({"seconds": 0.0})
    again.load_state_dict(first.state_dict())
    assert again.step()["val/loss"] == 1.0 / 2


def test_sampled_sleeper_adds_a_sample_per_report():
    sampled = resolve_trainable("_sleeper:SampledSleeper", [BENCHMARKS])({"seconds": 0.0})
    sampled.step(), sampled.step()
    assert sampled.samples() == "prompt ||| continuation at report 2"
