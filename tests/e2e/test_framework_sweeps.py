"""The Lightning and Hugging Face examples (examples/lightning_loop.py, hf_loop.py) swept
through the CLI as a user would, against real Ray and MLflow: under PBT a collapsed trial is
rescued by a healthy one's framework checkpoint; and under PBT or ASHA a driver SIGKILLed
mid-sweep resumes with every trial FINISHED and every step in MLflow once. (Their plain
ASHA sweeps, collapse stopping included, are tests/test_examples.py's.)"""

from __future__ import annotations

import pytest

from tests.e2e.toy_sweep import (assert_each_step_once, assert_rescued, cli, copy_example, finished_runs, kill_when,
                                 sqlite_values, trial_runs)

FRAMEWORKS = {"lightning_loop": "lightning", "hf_loop": "transformers"}
# Small: 3 trials (lr 1.0 collapses, lr 3e-3 is healthy, one drawn), checkpointed each second
# so a killed trial resumes from mid-run, not from its start.
SMALL = ["--set", "num_samples=3", "--set", "checkpoint_interval_s=1"]
# Every report a trial may copy or be copied (so the healthy trials are donors by the time
# lr 1.0 is marked collapsed at report 3); 8 reports, so a donor has the 3 the rules need left.
PBT = ["--set", "scheduler={type: pbt, mutable: [lr], perturbation_interval: 1, resample_probability: 0}",
       "--set", "max_iterations=8"]


def _sweep(tmp_path, name: str, *overrides: str):
    pytest.importorskip(FRAMEWORKS[name])
    sweep = copy_example(tmp_path, name)
    return cli("run", str(sweep.relative_to(tmp_path)), *SMALL, *overrides, cwd=tmp_path, wait=False,
               env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})


def _resume(tmp_path) -> None:
    (results,) = list((tmp_path / "results").iterdir())
    out = cli("resume", str(results), cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


# hf_loop, seen once before the fix: killed just as PBT made an ordinary copy into another
# trial, that trial's first report after the copy was missing from its MLflow run after the
# resume (steps 1, 2, 3, 5, ...), and so was its exploits line. The snapshot named the donor's
# checkpoint, which the donor's rotation had deleted, so the resumed trial went on from its own
# newest checkpoint, saved after the copy (_ray.fixes fix 4), and the copy's report, queued in
# the MLflow writer at the kill, was never made again. The resumed driver now logs it from the
# trial's record (tracking/_catchup.py; tests/test_catchup.py reproduces it deterministically:
# this test's kill only sometimes falls at such a copy).
@pytest.mark.slow
@pytest.mark.parametrize("name", FRAMEWORKS)
def test_pbt_rescues_a_collapsed_framework_trial_and_resumes_after_a_driver_kill(tmp_path, name):
    driver = _sweep(tmp_path, name, *PBT)
    tag = "collapsetune.pbt.exploits"
    kill_when(driver, lambda: any("after collapsed" in v for v in sqlite_values(tmp_path / "mlflow.db", tag)),
              "a rescue", then_s=2)  # a report or two after the rescue
    _resume(tmp_path)
    client, runs = trial_runs(tmp_path, f"example-{name.replace('_', '-')}")
    assert_each_step_once(client, runs, trials=3)
    assert_rescued(client, runs, tag)
    # A rescued trial went on healthy from the donor's checkpoint (and its epoch: how many
    # reports it then makes depends on the donor's) past the report it collapsed at. PBT may
    # rescue more than one trial of the three.
    rescued = [r for r in runs if "after collapsed" in r.data.tags.get(tag, "")]
    assert any(r.data.tags["collapse.status"] == "healthy"
               and len(client.get_metric_history(r.info.run_id, "val/loss")) > 3 for r in rescued), rescued


@pytest.mark.slow
@pytest.mark.parametrize("name", FRAMEWORKS)
def test_an_asha_framework_sweep_resumes_after_a_driver_kill_with_every_step_once(tmp_path, name):
    # 12 reports, not the example's 6: lr 1.0 ends at report 3 and the third trial starts only
    # then (two slots), so at 6 the healthy trial and the third could both end within one poll
    # of the first ending (seen once in CI under load: killed with all three finished). At 12
    # the healthy trial still has 9 reports to make when the first trial ends.
    driver = _sweep(tmp_path, name, "--set", "max_iterations=12")
    kill_when(driver, lambda: finished_runs(tmp_path / "mlflow.db") >= 1, "a finished trial")
    assert finished_runs(tmp_path / "mlflow.db") < 3, "killed too late to test resume"
    _resume(tmp_path)
    client, runs = trial_runs(tmp_path, f"example-{name.replace('_', '-')}")
    assert_each_step_once(client, runs, trials=3)
    by_lr = {float(r.data.params["lr"]): r for r in runs}
    assert by_lr[1.0].data.tags["collapse.status"] == "collapsed"
    assert by_lr[1.0].data.tags["collapse.iteration"] == "3"
    assert [m.step for m in client.get_metric_history(by_lr[3.0e-3].info.run_id, "val/loss")] == list(range(1, 13))
