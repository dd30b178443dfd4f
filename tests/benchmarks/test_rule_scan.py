"""The rule scan: rules and CollapseASHA's rungs scanned together, and the per-seed cache
that lets a scan grow without re-running what it has."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import collapse_bench as cb
from benchmarks import rule_scan
from collapsetune.spec import load_sweep

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def table() -> cb.Table:
    return cb.Table("mop_clip")


def test_a_schedule_variant_runs_the_sweep_with_that_collapse_asha(table):
    (method,) = rule_scan.variants(table, [4], [3], None, [(2, 3.0)])
    assert method.name == "grace 4, patience 3, unless improving; asha 2/3"
    spec = cb.method_spec(table, method, trials=8, seed=0)
    assert (spec.scheduler.type, spec.scheduler.grace_period, spec.scheduler.reduction_factor) == ("asha", 2, 3)
    scanned = spec.collapse[:len(table.rules)]  # the table's rules; the file's waiting rule keeps its own
    assert all(r.grace == 4 and r.patience == 3 and r.conditions[0].KIND == "unless_improving" for r in scanned)
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


FLAT = {"metric": "collapse/subprompt_cos_max", "above": 0.95, "unless_improving": {"by": 0.005, "over": 1},
        "grace": 3, "patience": 2}


def test_an_extra_rule_runs_after_the_shipped_ones_with_its_own_counts(table):
    plain, extra = rule_scan.variants(table, [4], [4], False, extra_rules=[None, FLAT])
    assert plain.name == "grace 4, patience 4"
    assert extra.name == ("grace 4, patience 4; + collapse/subprompt_cos_max > 0.95 unless improving by 0.005 "
                          "over 1 reports, grace 3, patience 2")
    spec = cb.method_spec(table, extra, trials=8, seed=0)
    shipped, added = spec.collapse[:-1], spec.collapse[-1]
    assert [r.metrics for r in shipped] == [r.metrics for r in table.rules]
    assert all(r.grace == 4 and r.patience == 4 for r in shipped)
    assert added.to_yaml() == FLAT
    # Without one, the sweep file's own rules, beyond the table's too (mop_clip's waiting rule)
    own = load_sweep(ROOT / "sweeps" / "mop_clip.yaml").collapse
    assert cb.method_spec(table, plain, trials=8, seed=0).collapse == own and len(own) > len(table.rules)


def test_an_extra_rule_the_sweep_would_refuse_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as raised:
        rule_scan.main(["mop_clip", "--extra-rule", "{metric: collapse/subprompt_cos_max, abov: 0.95}"])
    assert raised.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "argument --extra-rule: expected a rule as a sweep file writes it" in last
    assert "abov: unknown key (did you mean 'above'?)" in last
