"""The runnable examples under examples/ (docs/extending.md): how many lines each adds to an
ordinary training script, and each one's sweep through the CLI with ASHA: a collapsed trial
stopped, a healthy one run to the end, one MLflow run per trial."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DOCS = ROOT / "docs" / "extending.md"
# A line the user added or changed: code, then two spaces and the marker (PEP 8's inline comment).
ADDED = re.compile(r"^\s*\S.*  # collapsetune\b")
LOOPS = {"function_loop": 10, "lightning_loop": 4, "hf_loop": 6}  # lines each adds, as its docstring says


def _added(name: str) -> int:
    return sum(bool(ADDED.match(line)) for line in (EXAMPLES / f"{name}.py").read_text().splitlines())


@pytest.mark.parametrize(("name", "lines"), LOOPS.items())
def test_an_example_adds_at_most_ten_lines_and_says_how_many(name, lines):
    assert _added(name) == lines <= 10
    assert f"{lines} added or changed" in (EXAMPLES / f"{name}.py").read_text()
    assert f"examples/{name}.py" in DOCS.read_text() and f"| {lines} |" in DOCS.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["function_loop", "class_kit", "lightning_loop", "hf_loop"])
def test_an_example_sweep_stops_the_collapsed_trial_and_runs_the_healthy_one(tmp_path, name):
    if name == "lightning_loop":
        pytest.importorskip("lightning")
    if name == "hf_loop":
        pytest.importorskip("transformers")
    out = subprocess.run(
        [sys.executable, "-m", "collapsetune.cli", "run", str(EXAMPLES / f"{name}.yaml"), "--set", "num_samples=2",
         "--set", f"storage={tmp_path / 'results'}", "--set", f"mlflow.tracking_uri=sqlite:///{tmp_path / 'm.db'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, start_new_session=True,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")
    experiment = client.get_experiment_by_name(f"example-{name.replace('_', '-')}")
    runs = client.search_runs([experiment.experiment_id], "tags.`ray.trial_id` != ''")
    by_lr = {float(r.data.params["lr"]): r for r in runs}
    assert sorted(by_lr) == [3.0e-3, 1.0]  # the sweep's points_to_evaluate
    collapsed, healthy = by_lr[1.0], by_lr[3.0e-3]
    assert collapsed.data.tags["collapse.status"] == "collapsed"
    assert collapsed.data.tags["collapse.iteration"] == "3"  # grace 1 + patience 2: stopped at once
    assert healthy.data.tags["collapse.status"] == "healthy"
    steps = [m.step for m in client.get_metric_history(healthy.info.run_id, "val/loss")]
    assert steps == list(range(1, 7))


def test_the_hf_example_leaves_no_folder_behind(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    import importlib
    import tempfile

    from collapsetune.function import function_wrapper

    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the Trainer's output went
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    train = importlib.import_module("hf_loop").train
    config = {"lr": 3e-3, "width": 32, "steps_per_epoch": 4, "max_iterations": 3}
    trial = function_wrapper(train)(config)
    trial.step()
    trial.close()  # stopped part way, as a collapse verdict or ASHA stops it
    train({**config, "max_iterations": 1})  # outside a sweep, to its end
    assert not list(tmp_path.glob("hf-loop-*")) and not list(tmp_path.glob("collapsetune-*"))
