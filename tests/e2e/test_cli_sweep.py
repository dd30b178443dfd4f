"""End to end: `collapsetune run` on a real embedded Ray with Optuna, ASHA, collapse rules
and MLflow on SQLite, driving a wrapper written outside the project."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

HERE = Path(__file__).parent
SWEEP = """\
name: toy-e2e
trainable: outside_wrapper:Toy
search_space:
  lr: {loguniform: [0.001, 0.3]}
objective: {metric: val/loss, mode: min}
max_iterations: 6
num_samples: 5
search: {algorithm: optuna, seed: 0, points_to_evaluate: [{lr: 0.2}, {lr: 0.01}]}
scheduler: {type: asha, grace_period: 3, reduction_factor: 3}   # >= rule grace + patience
collapse:
  - {metric: collapse/unique_tokens, below: 20, patience: 2, grace: 1}
resources: {cpu: 1}
storage: results
mlflow: {tracking_uri: sqlite:///mlflow.db}
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "collapsetune.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=600,
    )


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    # The wrapper sits beside the sweep file only: Ray workers must get it shipped.
    work = tmp_path_factory.mktemp("sweep")
    (work / "sweeps").mkdir()
    shutil.copy(HERE / "outside_wrapper.py", work / "sweeps" / "outside_wrapper.py")
    (work / "sweeps" / "toy.yaml").write_text(SWEEP)
    out = _cli("run", "sweeps/toy.yaml", cwd=work)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return work, out


@pytest.mark.slow
def test_run_stops_collapsed_trial_and_keeps_healthy_one(swept):
    work, out = swept
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("toy-e2e")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 5
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}

    collapsed = [r for r in children if r.data.params["lr"] == "0.2"]
    assert len(collapsed) == 1
    bad = collapsed[0]
    assert bad.data.tags["collapse.status"] == "collapsed"
    assert bad.data.tags["collapse.reason"] == "collapse/unique_tokens=4 < 20 for 2 reports"
    assert bad.data.tags["collapse.iteration"] == "3"
    history = client.get_metric_history(bad.info.run_id, "val/loss")
    assert max(m.step for m in history) == 3  # stopped on the report where it collapsed
    assert bad.data.metrics["objective"] == 1.0e9  # what ASHA and Optuna learned
    cpu = client.get_metric_history(bad.info.run_id, "time/cpu_s")  # what each report cost
    assert [m.step for m in cpu] == [1, 2, 3] and all(m.value >= 0.0 for m in cpu)
    samples = Path(client.download_artifacts(bad.info.run_id, "samples.md", str(work))).read_text()
    assert samples.index("## Report 1") < samples.index("## Report 3") < samples.rindex("the the the")
    figure = client.download_artifacts(bad.info.run_id, "vocabulary.txt", str(work))
    assert Path(figure).read_text() == "collapsed\n"  # written by the wrapper on the worker

    healthy = [r for r in children if r.data.tags["collapse.status"] == "healthy"]
    full = [r for r in healthy if max(m.step for m in client.get_metric_history(r.info.run_id, "val/loss")) == 6]
    assert full, "no healthy trial ran to max_iterations"
    assert all(r.info.status == "FINISHED" for r in children)
    # Pictures are drawn where a user looks: every collapsed or full-length trial's run has
    # them; a trial ASHA cut has none (draw_cut_trials is off by default).
    for run in children:
        ended = max(m.step for m in client.get_metric_history(run.info.run_id, "val/loss"))
        drawn = run.data.tags["collapse.status"] == "collapsed" or ended == 6
        assert ("vocabulary.txt" in {a.path for a in client.list_artifacts(run.info.run_id)}) == drawn, \
            (run.data.params, ended)
    assert "best healthy trial" in out.stdout


@pytest.mark.slow
def test_report_json_matches_mlflow(swept):
    work, _ = swept
    (results,) = list((work / "results").iterdir())
    out = _cli("report", str(results), "--json", cwd=work)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["counts"].get("collapsed", 0) >= 1
    assert summary["best"]["status"] == "healthy"
    assert summary["best"]["config"]["lr"] != 0.2
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    best_run = client.get_run(summary["best"]["mlflow_run_id"])
    assert best_run.data.tags["collapse.status"] == "healthy"
    assert best_run.data.tags["ray.trial_id"] == summary["best"]["trial_id"]


@pytest.mark.slow
def test_findings_published_on_the_parent_run_of_a_real_sweep(swept):
    from collapsetune.insight import NOTE_TAG
    from collapsetune.tracking import publish_sweep
    from collapsetune.names import PATH_TAG

    work, _ = swept
    (results,) = list((work / "results").iterdir())
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("toy-e2e").experiment_id
    (parent,) = client.search_runs([experiment], f"tags.`{PATH_TAG}` = '{results}'")
    published = publish_sweep(client, parent.info.run_id, str(results))
    run = client.get_run(parent.info.run_id)
    collapsed = len(client.search_runs([experiment], "tags.`collapse.status` = 'collapsed'"))
    assert collapsed >= 1  # Optuna may propose more than the seeded lr=0.2
    assert run.data.tags[NOTE_TAG].startswith(f"## toy-e2e: {collapsed} of 5 trials collapsed")
    assert run.data.params["search_space.lr"] == "loguniform [0.001, 0.3]"
    assert run.data.metrics["trials/collapsed"] == collapsed
    assert "atlas/atlas.html" in published.atlas and published.child_notes == 5
    bad = next(r for r in client.search_runs([experiment], "params.lr = '0.2'"))
    assert bad.data.tags[NOTE_TAG] == "collapsed at report 3: collapse/unique_tokens=4 &lt; 20 for 2 reports"
    out = _cli("report", str(results), cwd=work)  # the atlas left in the results folder is found
    assert f"collapse atlas: {results / 'atlas' / 'atlas.html'}" in out.stdout
    assert "workflowType=machine_learning" in out.stdout
