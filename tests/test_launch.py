from __future__ import annotations

from pathlib import Path

import pytest

from collapsetune.launch import pinned
from collapsetune.spec import dump_spec, load_sweep

ROOT = Path(__file__).parents[1]


def test_advice_when_asha_rung_precedes_rule_verdict():
    spec = load_sweep(ROOT / "sweeps" / "bitnet_lm.yaml", ["scheduler.grace_period=3", "scheduler.early_rungs=false"])
    (warning,) = spec.advice()
    assert warning.key == "scheduler.grace_period"
    assert "3 comes before report 10" in warning.message and "set grace_period >= 10" in warning.message


def test_advice_silent_for_shipped_sweeps_and_fifo():
    for shipped in sorted((ROOT / "sweeps").glob("*.yaml")):
        assert load_sweep(shipped).advice() == [], shipped
    assert load_sweep(ROOT / "sweeps" / "smoke.yaml").advice() == []
    assert load_sweep(ROOT / "sweeps" / "smoke.yaml", ["scheduler={type: fifo}"]).advice() == []


def test_early_rungs_says_an_early_rung_is_meant():
    early = ["scheduler.grace_period=3", "scheduler.early_rungs=true"]
    assert load_sweep(ROOT / "sweeps" / "smoke.yaml", early).advice() == load_sweep(ROOT / "sweeps" / "smoke.yaml").advice()
    assert load_sweep(ROOT / "sweeps" / "bitnet_lm.yaml", early).advice() == []
    # sweeps/mop_clip.yaml's rung at 3 comes before its rules' earliest verdict; it says so
    (warning,) = load_sweep(ROOT / "sweeps" / "mop_clip.yaml", ["scheduler.early_rungs=false"]).advice()
    assert "3 comes before report" in warning.message and "early_rungs: true" in warning.message


def test_cut_trials_are_drawn_only_when_the_sweep_asks_or_a_forecast_may_stop_trials():
    from collapsetune.launch import _trainable

    def draws_at_end(*overrides: str) -> bool:
        return _trainable(load_sweep(ROOT / "sweeps" / "mop_clip.yaml", overrides)).plan.draw_at_end

    assert not draws_at_end()  # the default: a trial ASHA cuts costs no drawing
    assert draws_at_end("draw_cut_trials=true")
    # A trial the forecast stops reads as collapsed, and its trainable cannot tell that end
    # from a cut: drawn as it ends, so every collapsed trial has pictures.
    assert draws_at_end("collapse_forecast={min_trials: 20}")


def test_a_relative_sqlite_store_is_pinned_to_the_launch_directory(tmp_path):
    spec = pinned(load_sweep(ROOT / "sweeps" / "smoke.yaml"), cwd=tmp_path)
    assert spec.mlflow.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    remote = load_sweep(ROOT / "sweeps" / "smoke.yaml", ["mlflow.tracking_uri=http://127.0.0.1:5000"])
    assert pinned(remote, cwd=tmp_path) == remote


def test_the_resolved_sweep_never_holds_a_password():
    spec = load_sweep(ROOT / "sweeps" / "smoke.yaml", ["mlflow.tracking_uri=https://ann:s3cret@127.0.0.1:5000"])
    assert "s3cret" not in dump_spec(spec) and "tracking_uri: https://127.0.0.1:5000" in dump_spec(spec)


def test_advice_when_relative_results_would_land_outside_the_sweeps_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # somewhere else than the project the sweep lives in
    keys = {w.key for w in load_sweep(ROOT / "sweeps" / "smoke.yaml").advice()}
    assert keys == {"storage", "mlflow.tracking_uri"}
    absolute = load_sweep(ROOT / "sweeps" / "smoke.yaml",
                          [f"storage={tmp_path / 'r'}", f"mlflow.tracking_uri=sqlite:///{tmp_path / 'm.db'}"])
    assert absolute.advice() == []
    monkeypatch.chdir(ROOT)
    assert load_sweep(ROOT / "sweeps" / "smoke.yaml").advice() == []


def test_make_stopper_is_the_forecast_stopper_only_with_collapse_forecast():
    from collapsetune.collapse import CollapseStopper, ForecastStopper
    from collapsetune.launch import make_stopper

    sweep = Path(__file__).resolve().parents[1] / "sweeps" / "mop_clip.yaml"
    assert type(make_stopper(load_sweep(sweep))) is CollapseStopper
    stopper = make_stopper(load_sweep(sweep, ["collapse_forecast={min_trials: 30, max_false_stop: 0.1}"]))
    assert isinstance(stopper, ForecastStopper) and stopper.penalties == {"objective": -1e9}
    f = stopper.forecaster
    # judged_at: the rules' grace 4 + patience 4, the first report a verdict can come on
    assert (f.judged_at, f.min_trials, f.max_false_stop, f.first_report) == (8, 30, 0.1, 1)


@pytest.mark.slow  # starts a private Ray through `collapsetune run` (~7 s)
def test_a_launch_that_fails_before_any_trial_leaves_no_results_folder(tmp_path, monkeypatch, capsys):
    from collapsetune.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "wrap.py").write_text("class Toy:\n    def __init__(self, config):\n        pass\n\n"
                                      "    def step(self):\n        return {'val/loss': 1.0}\n")
    (tmp_path / "sweep.yaml").write_text(
        "name: toy\ntrainable: wrap:Toy\nsearch_space: {lr: {loguniform: [1.0e-4, 1.0e-2]}}\n"
        "objective: {metric: val/loss, mode: min}\nmax_iterations: 2\nnum_samples: 1\n"
        "resources: {cpu: 1000, gpu: 0}\nstorage: results\nmlflow: {tracking_uri: null}\n")
    assert main(["run", str(tmp_path / "sweep.yaml")]) == 2  # no node has 1000 CPUs
    err = capsys.readouterr().err
    assert "resources.cpu" in err and "no trial started" in err
    assert list((tmp_path / "results").iterdir()) == []  # no empty folder, no stale .driver.lock


@pytest.mark.slow  # a whole sweep through `collapsetune run` on a private Ray (~10 s)
def test_workers_get_the_wrapper_and_what_it_imports_not_scratch_scripts(tmp_path, monkeypatch, capsys):
    from collapsetune.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "shipped_wrap.py").write_text("import shipped_helper\n\n\nclass Toy:\n"
                                              "    def __init__(self, config):\n        pass\n\n"
                                              "    def step(self):\n        return {'val/loss': shipped_helper.LOSS}\n")
    (tmp_path / "shipped_helper.py").write_text("LOSS = 0.5\n")
    (tmp_path / "scratch.py").write_text("raise RuntimeError('a scratch script')\n")
    (tmp_path / "sweep.yaml").write_text(
        "name: toy\ntrainable: shipped_wrap:Toy\nsearch_space: {lr: {loguniform: [1.0e-4, 1.0e-2]}}\n"
        "objective: {metric: val/loss, mode: min}\nmax_iterations: 1\nnum_samples: 1\nsearch: {algorithm: random}\n"
        "resources: {cpu: 1, gpu: 0}\nstorage: results\nmlflow: {tracking_uri: null}\n")
    assert main(["run", str(tmp_path / "sweep.yaml")]) == 0  # the worker imported helper: it was sent
    out = capsys.readouterr().out
    assert "collapsetune: sending to every Ray worker: shipped_wrap.py, shipped_helper.py (" in out
    assert "scratch" not in out


def test_the_wrapper_is_imported_once_when_the_sweep_loads_and_the_launch_reuses_it(tmp_path, monkeypatch):
    import sys

    from collapsetune.launch import _trainable, wrapper_class

    monkeypatch.chdir(tmp_path)
    sweeps = tmp_path / "sweeps"
    sweeps.mkdir()
    (sweeps / "once_wrap.py").write_text(
        "class Toy:\n    def __init__(self, config):\n        pass\n\n"
        "    def step(self):\n        return {'val/loss': 1.0}\n")
    (sweeps / "s.yaml").write_text("name: once\ntrainable: once_wrap:Toy\nobjective: {metric: val/loss, mode: min}\n"
                                   "storage: results\nmlflow: {tracking_uri: null}\n")
    spec = load_sweep(sweeps / "s.yaml")
    assert spec.wrapper.__name__ == "Toy" and spec.search_dirs == (sweeps, tmp_path)
    # Gone from disk and from Python: a launch that imported it again would fail here.
    (sweeps / "once_wrap.py").unlink()
    monkeypatch.delitem(sys.modules, "once_wrap")
    assert wrapper_class(spec) is spec.wrapper
    plan = _trainable(spec).plan  # what every trial is given: the name and the same folders
    assert (plan.wrapper, plan.search_dirs) == ("once_wrap:Toy", (str(sweeps), str(tmp_path)))
