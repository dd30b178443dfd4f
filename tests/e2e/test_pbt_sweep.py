"""A collapse-aware PBT sweep through the CLI: a collapsed trial is rescued (it takes another
trial's checkpoint and a perturbed lr) instead of stopped; MLflow shows its history as one
run; and a driver killed after the rescue resumes with nothing logged twice."""

from __future__ import annotations

import pytest

from tests.e2e.toy_sweep import (assert_each_step_once, assert_rescued, cli, kill_when, sqlite_values, trial_runs,
                                 write_sweep)

EXPLOITS_TAG = "collapsetune.pbt.exploits"


@pytest.mark.slow
# a class; one that takes PBT's new knobs in place (reconfigure); a user's own loop
@pytest.mark.parametrize("wrapper", ["outside_wrapper:Toy", "outside_wrapper:Retunable", "outside_loop:train"])
def test_pbt_rescues_a_collapsed_trial_and_resumes_after_a_driver_kill(tmp_path, wrapper):
    # The Toy collapses while lr > 0.05: the point lr 0.2 is marked collapsed at report 3.
    # perturbation_interval 1: every trial has a score (and so can be a donor) from report 1.
    builds = tmp_path / "builds.txt"  # Retunable's: a line per build, and per copy it took in place
    write_sweep(tmp_path, "toy-pbt", wrapper, config=f"{{sleep: 0.5, builds: {builds}}}" if "Retunable" in wrapper
                else "{sleep: 0.5}", max_iterations="8",
                scheduler="{type: pbt, mutable: [lr], perturbation_interval: 1, resample_probability: 0}",
                mlflow='{tracking_uri: "sqlite:///mlflow.db"}', checkpoint_interval_s="1")
    driver = cli("run", "sweeps/toy-pbt.yaml", cwd=tmp_path, wait=False)
    # A report or two after the rescue, the driver dies.
    kill_when(driver, lambda: bool(sqlite_values(tmp_path / "mlflow.db", EXPLOITS_TAG)), "a rescue", then_s=2)

    (results,) = list((tmp_path / "results").iterdir())
    out = cli("resume", str(results), cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    # Ray's results: every trial finished. (Which reports its result.json holds is not
    # checked: the lines written after Ray's last sync before the SIGKILL are lost there, and
    # MLflow, written exactly once by the driver, is the record checked below.)
    finished = [f for f in results.glob("*/result.json") if '"done": true' in f.read_text()]
    assert len(finished) == 4

    # MLflow: one run per trial, steps 1..n with none twice, and the rescue listed once.
    client, runs = trial_runs(tmp_path, "toy-pbt")
    assert_each_step_once(client, runs, trials=4)
    assert_rescued(client, runs, EXPLOITS_TAG)
    if "Retunable" in wrapper:  # Tune reused actors for PBT's pauses and copies: kept, not rebuilt
        lines = builds.read_text().splitlines()
        assert any(line.endswith(" kept") for line in lines), lines
