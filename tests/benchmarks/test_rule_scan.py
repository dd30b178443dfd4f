"""The rule scan: rules and CollapseASHA's rungs scanned together, and the per-seed cache
that lets a scan grow without re-running what it has."""

from __future__ import annotations

import json

import pytest

from benchmarks import collapse_bench as cb
from benchmarks import rule_scan


@pytest.fixture(scope="module")
def table() -> cb.Table:
    return cb.Table("mop_clip")


def test_a_schedule_variant_runs_the_sweep_with_that_collapse_asha(table):
    (method,) = rule_scan.variants(table, [4], [3], None, [(2, 3.0)])
    assert method.name == "grace 4, patience 3, unless improving; asha 2/3"
    spec = cb.method_spec(table, method, trials=8, seed=0)
    assert (spec.scheduler.type, spec.scheduler.grace_period, spec.scheduler.reduction_factor) == ("asha", 2, 3)
    assert all(r.grace == 4 and r.patience == 3 and r.conditions[0].KIND == "unless_improving" for r in spec.collapse)
    # Without a schedule the sweep's own scheduler is kept, and waiting=True gives both.
    names = [m.name for m in rule_scan.variants(table, [4], [2], True)]
    assert names == ["grace 4, patience 2", "grace 4, patience 2, unless improving"]


def test_a_schedule_that_is_not_grace_slash_factor_is_refused(capsys):
    with pytest.raises(SystemExit) as raised:
        rule_scan.main(["mop_clip", "--asha", "6x3"])
    assert raised.value.code == 2
    assert "expected GRACE/FACTOR such as 6/3, got '6x3'" in capsys.readouterr().err


def test_a_growing_scan_replays_only_the_methods_a_seed_lacks(table, tmp_path):
    cache = tmp_path / "seeds.jsonl"
    first, _ = cb.cell(table, ["fifo", "asha"], 8, 2, [0], cache=cache, log=lambda _: None)
    rows, _ = cb.cell(table, ["fifo", "asha", "collapsetune"], 8, 2, [0], cache=cache, log=lambda _: None)
    written = [json.loads(line)["method"] for line in cache.read_text().splitlines()]
    # each once; the oracle's too (the measures need it, and the cache keeps it for later methods)
    assert sorted(written) == ["asha", "collapsetune", "fifo", "oracle"]
    assert [r["method"] for r in rows] == ["fifo", "asha", "collapsetune"]
    assert rows[0]["cpu_s"] == first[0]["cpu_s"]


def test_scan_variants_replay_in_other_processes_as_in_one(table, tmp_path):
    # A scan's variants are made at run time, so a replay process must be given them; the
    # figures are the same as in one process.
    (variant,) = rule_scan.variants(table, [4], [3], False, [(2, 3.0)])
    cb.METHODS[variant.name] = variant
    try:
        cells = [cb.cell(table, ["fifo", variant.name], 16, 4, [0], log=lambda _: None, jobs=jobs)[0]
                 for jobs in (1, 2)]
    finally:
        del cb.METHODS[variant.name]
    assert cells[0] == cells[1] and cells[0][1]["method"] == variant.name


def test_jobs_below_one_is_refused(capsys):
    with pytest.raises(SystemExit) as raised:
        rule_scan.main(["mop_clip", "--jobs", "0"])
    assert raised.value.code == 2
    assert "--jobs must be a whole number >= 1, got 0" in capsys.readouterr().err
