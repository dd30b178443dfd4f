"""The replayed collapse benchmark: its quick mode, its definitions, and that a replay stops
the same trials at the same reports as a real sweep of the same configurations."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from benchmarks import collapse_bench as cb

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def table() -> cb.Table:
    return cb.Table("mop_clip")


@pytest.mark.slow  # the whole benchmark, every method on 64 trials x 3 seeds
def test_quick_mode_measures_every_method_side_by_side(tmp_path):
    out = tmp_path / "bench.json"
    doc = cb.main(["--quick", "--out", str(out), "--plots", str(tmp_path)])
    rows = {r["method"]: r for r in doc["rows"]}
    assert set(rows) == set(cb.METHODS)
    assert json.loads(out.read_text())["rows"] == doc["rows"]
    for r in rows.values():
        assert (r["trials"], r["workers"], r["seeds"]) == (64, 8, 3)
        assert r["cpu_s"] > 0 and 0 <= r["picked_collapsed_share"] <= 1
    assert rows["fifo"]["fifo_ratio"] == pytest.approx(1.0)
    assert rows["oracle"]["oracle_ratio"] == pytest.approx(1.0)
    # Stopping can only save: every early-stopping method runs less than FIFO's reports.
    for name in ("asha", "asha+function_stopper", "collapsetune", "oracle"):
        assert rows[name]["fifo_ratio"] < 1.0, name
    # Nothing but collapse mechanisms kill recoveries: plain ASHA and FIFO never do.
    assert rows["fifo"]["false_kill_seed_share"] == rows["asha"]["false_kill_seed_share"] == 0
    assert rows["oracle"]["false_kill_seed_share"] == 0


def test_nearest_row_serves_a_tabulated_config_exactly(table):
    row = table.rows[5]
    found, distance = table.nearest(dict(row.config))
    assert found.index == row.index and distance == 0.0
    moved = {**row.config, "lr": row.config["lr"] * 1.01}
    found, distance = table.nearest(moved)
    assert distance > 0


def test_nearest_row_is_the_plain_loops_over_every_row(table):
    # `nearest` narrows the rows with numpy, then lets the plain loop pick: the row and the
    # distance must be the loop's over the whole table, ties and exclusions included.
    rng = random.Random(0)
    for _ in range(400):
        a, b = rng.choice(table.rows).config, rng.choice(table.rows).config
        config = {k: (a if rng.random() < 0.5 else b)[k] for k in a}
        if rng.random() < 0.5:
            config["lr"] *= 1 + rng.uniform(-0.1, 0.1)
        exclude = rng.choice([None, rng.choice(table.rows).index])
        found, distance = table.nearest(config, exclude)
        loop, loop_distance = table._closest(table._vector(config), range(len(table.rows)), exclude)
        assert found is loop and distance == loop_distance


def test_weighted_nearest_row_is_the_plain_loops_and_its_weights_help_held_out():
    # The fitted weights: the numpy narrowing and the plain loop still agree on every config,
    # and on rows it did not fit on the weighted distance serves curves at least as close.
    weighted = cb.Table("bitnet_lm", weighted=True)
    assert weighted.weights != [1.0] * len(weighted.dims)
    rng = random.Random(1)
    for _ in range(200):
        config = dict(rng.choice(weighted.rows).config)
        config["lr"] *= 1 + rng.uniform(-0.3, 0.3)
        found, distance = weighted.nearest(config)
        assert (found, distance) == weighted._closest(weighted._vector(config), range(len(weighted.rows)))
    held = weighted.held_out_error(repeats=1)
    assert held["weighted"]["median_abs_error"] <= held["unweighted"]["median_abs_error"]
    assert cb._cell_key(weighted, 8, 2) == cb._cell_key(cb.Table("bitnet_lm"), 8, 2) + "/weighted"


def test_weighted_replays_need_their_own_out_file(capsys):
    with pytest.raises(SystemExit) as stop:
        cb.main(["--weighted", "--out", str(cb.RESULTS)])
    assert stop.value.code == 2 and "--weighted needs its own --out" in capsys.readouterr().err


def test_replays_in_processes_measure_the_same_as_in_one(table, tmp_path):
    # --jobs: each replay is a function of its method and seed alone; run in other processes,
    # every seed's measures and curves, and the cell's summary, must be the same.
    cells = []
    for jobs in (1, 2):
        cache = tmp_path / f"seeds{jobs}.jsonl"
        rows, bands = cb.cell(table, ["collapsetune", "asha"], 24, 4, [0, 1], cache=cache, log=lambda _: None,
                              jobs=jobs)
        cells.append((rows, bands, sorted(cache.read_text().splitlines())))
    assert cells[0] == cells[1]


def test_a_method_added_to_a_cached_cell_replays_that_method_alone(table, tmp_path, monkeypatch):
    # FIFO's and the oracle's cached records (with FIFO's target) serve the measures of a
    # method added later: the grown cell is the one measured at once, from one replay a seed.
    fresh, _ = cb.cell(table, ["collapsetune", "asha"], 24, 4, [0, 1], log=lambda _: None)
    cache = tmp_path / "seeds.jsonl"
    cb.cell(table, ["collapsetune"], 24, 4, [0, 1], cache=cache, log=lambda _: None)
    replayed = []
    real = cb.replay
    monkeypatch.setattr(cb, "replay", lambda table, method, *a: replayed.append(method.name) or real(table, method, *a))
    grown, _ = cb.cell(table, ["collapsetune", "asha"], 24, 4, [0, 1], cache=cache, log=lambda _: None)
    assert grown == fresh and replayed == ["asha", "asha"]


def test_jobs_below_one_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cb.main(["--jobs", "0", "--out", str(tmp_path / "bench.json"), "--plots", str(tmp_path)])
    assert stop.value.code == 2 and "--jobs must be a whole number >= 1, got 0" in capsys.readouterr().err


def test_truth_of_a_row_follows_the_shipped_rules(table):
    for row in table.rows:
        assert len(row.reports) == len(row.cpu) == table.horizon
        # A row that ends collapsed by its last reports has an onset, and a healthy last report does not.
        assert row.ends_collapsed == (row.onset is not None)
        if row.ends_collapsed:
            assert not row.healthy[-1]


def test_function_stopper_applies_threshold_after_grace_with_patience(table):
    stopper = cb._function_stopper(table)  # mop_clip: cos > 0.9 or share > 0.95, grace 4, patience 2
    metric = "collapse/subprompt_cos_max"

    def result(i: int, cos: float) -> dict:
        return {"training_iteration": i, metric: cos, "collapse/assign_max_share": 0.5}

    assert not any(stopper("t", result(i, 0.99)) for i in range(1, 5))  # inside grace
    assert not stopper("t", result(5, 0.99))  # patience 2: first report past grace
    assert stopper("t", result(6, 0.99))
    assert not stopper("u", result(5, 0.99)) and not stopper("u", result(6, 0.5))


@pytest.mark.slow
def test_replay_stops_the_same_trials_at_the_same_reports_as_a_real_sweep(tmp_path, table):
    """Six tabulated configurations run for real, one at a time (so ASHA sees them in one
    order), under FIFO and under ASHA with the shipped rules; the replay of the same sweep
    must end every trial on the same report with the same verdict."""
    import ray

    from benchmarks.compare import fit

    # A mix of endings: the sweep's two fixed points, then rows that end collapsed and healthy.
    collapsed = [r for r in table.rows[2:] if r.ends_collapsed][:2]
    healthy = [r for r in table.rows[2:] if not r.ends_collapsed][:2]
    rows = table.rows[:2] + collapsed + healthy
    points = "[" + ", ".join("{" + ", ".join(f"{k}: {v!r}" for k, v in r.config.items()) + "}"
                             for r in rows) + "]"
    extra = (f"search.points_to_evaluate={points}", "max_concurrent=1")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for name in ("fifo", "collapsetune"):
            method = cb.METHODS[name]
            spec = cb.method_spec(table, method, len(rows), 0,
                                  (*extra, f"storage={tmp_path}", "mlflow.tracking_uri=null"))
            _, grid = fit(spec, f"{tmp_path}/{name}", name)
            real = {}
            for result in grid:
                match, distance = table.nearest(result.config)
                assert distance == 0.0
                last = result.metrics
                real[match.index] = (last["training_iteration"], last.get("collapse.status"))
            run = cb.replay(table, method, len(rows), 1, 0, extra)
            replayed = {t.row.index: (t.reports, t.status or None) for t in run.trials}
            if name == "fifo":  # no rules: the real results carry the trainable's verdict of no rules
                real = {i: (n, None) for i, (n, _) in real.items()}
            assert replayed == real, name
            assert any(n < table.horizon for n, _ in replayed.values()) or name == "fifo"
    finally:
        ray.shutdown()


def test_quantiles_ignore_missing_and_keep_infinity():
    q = cb._quantiles([1.0, None, 3.0, math.inf])
    assert q["n"] == 3 and q["median"] == 3.0 and math.isinf(q["p90"])


def test_a_cell_measured_with_another_sweep_file_is_measured_again(table, tmp_path, capsys):
    # A cell's figures belong to the sweep file they were replayed with: after the shipped sweep
    # is edited (its rules, its scheduler), the cell must not be "already measured, kept".
    out = tmp_path / "bench.json"
    argv = ["--models", "mop_clip", "--methods", "fifo", "--trials", "8", "--workers", "2", "--seeds", "1",
            "--out", str(out), "--plots", str(tmp_path)]
    (row,) = cb.main(argv)["rows"]
    assert row["sweep"] == table.sweep_sha
    capsys.readouterr()
    cb.main(argv)  # the same sweep file: nothing to replay
    assert "already measured, kept" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    doc["rows"][0]["sweep"] = "0ld5weep"
    out.write_text(json.dumps(doc))
    (again,) = cb.main(argv)["rows"]
    assert again["sweep"] == table.sweep_sha and "already measured" not in capsys.readouterr().out


def test_grid_shows_only_cells_of_the_sweep_files_as_they_are_now():
    def row(method, sweep, ratio, trials=256):
        return {"model": "mop_clip", "method": method, "trials": trials, "workers": 8, "seeds": 20, "sweep": sweep,
                "fifo_ratio": ratio, "false_kill_seed_share": 0.25, "picked_collapsed_share": 0.0}

    rows = [row("collapsetune", "new", 0.37), row("asha+function_stopper", "new", 0.45),
            row("collapsetune", "old", 0.40, trials=64)]  # a cell replayed before the sweep file changed
    lines = cb.grid(rows, {"mop_clip": "new"}).splitlines()
    assert len(lines) == 3  # header, rule, the one current cell
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[:3] == ["mop_clip", "256 x 8", "20"]
    assert cells[3:8] == ["-", "0.45", "-", "0.37", "-"]  # asha, stopper, optuna_pruner, collapsetune, oracle
    assert cells[8:] == ["0.25 / 0.25", "0.00 / 0.00"]
