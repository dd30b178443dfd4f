"""Under PBT every report of every trial reaches the results folder, and what `report` and
the parent run's description say about copies and rescues agrees with MLflow.

PBT pauses trials and starts them again in turns. Each time a trial starts, Ray's JSON
logger replaced the trial's result.json on the driver by the copy last synced to the results
folder, so the reports made since that sync were lost (issue 22: a trial had reports 1-6, 9,
11 and 12 there), and with them copies and rescues that `report` and the parent run count.
"""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from collapsetune.names import REPORTS_FILE
from tests.e2e.toy_sweep import cli, write_sweep

EXPLOITS_TAG = "collapsetune.pbt.exploits"
NOTE_TAG = "mlflow.note.content"


@pytest.mark.slow
def test_report_and_the_parent_run_count_every_pbt_copy_and_rescue(tmp_path):
    # Six trials on two slots: PBT pauses and resumes them in turns, all through the sweep;
    # the two with lr > 0.05 collapse and are rescued. Checkpoints every report make Ray sync
    # the results folder often (it syncs every few trial checkpoints), as a long sweep does.
    write_sweep(tmp_path, "toy-pbt-record", sleep="0.2", max_iterations="10", num_samples="6",
                search="{algorithm: random, seed: 1, points_to_evaluate: [{lr: 0.2}, {lr: 0.1}]}",
                scheduler="{type: pbt, mutable: [lr], perturbation_interval: 1, resample_probability: 0}",
                mlflow='{tracking_uri: "sqlite:///mlflow.db"}', max_concurrent="2", checkpoint_frequency="1")
    out = cli("run", "sweeps/toy-pbt-record.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (results,) = list((tmp_path / "results").iterdir())

    # MLflow, written once per report by the driver, is the complete record to compare with.
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("toy-pbt-record").experiment_id
    runs = client.search_runs([experiment], "tags.`ray.trial_id` != ''")
    copies = {r.data.tags["ray.trial_id"]: r.data.tags.get(EXPLOITS_TAG, "").splitlines() for r in runs}
    rescues = {t: [c for c in lines if " after collapsed " in c or " after diverged " in c]
               for t, lines in copies.items()}
    assert sum(map(len, rescues.values())) >= 1, copies  # the sweep did what the test is about

    # Each trial's record in the results folder holds every report MLflow has.
    for run in runs:
        trial_id = run.data.tags["ray.trial_id"]
        (record,) = results.glob(f"*{trial_id}*/{REPORTS_FILE}")
        lines = [json.loads(line) for line in record.read_text().splitlines()]
        steps = client.get_metric_history(run.info.run_id, "val/loss")
        assert len(lines) == len(steps), f"{trial_id}: {len(lines)} reports in {record.name}, {len(steps)} in MLflow"

    # `report` names every copy and every rescue of every trial.
    out = cli("report", str(results), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = {row["trial_id"]: row["reason"] for row in json.loads(out.stdout)["trials"]}
    for trial_id, lines in copies.items():
        assert rows[trial_id].count("took trial ") == len(lines), (trial_id, rows[trial_id], lines)
        assert rows[trial_id].count("rescued when ") == len(rescues[trial_id]), (trial_id, rows[trial_id], lines)

    # The parent run counts them as the runs' own tags do.
    (parent,) = [r for r in client.search_runs([experiment]) if "ray.trial_id" not in r.data.tags]
    copied = sum(1 for lines in copies.values() if lines)
    rescued = sum(1 for lines in rescues.values() if lines)
    assert (f"**PBT** copied a checkpoint into {copied} trial(s); {rescued} of them were rescued"
            in parent.data.tags[NOTE_TAG]), parent.data.tags[NOTE_TAG]
