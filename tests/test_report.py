"""`collapsetune report`: quick, pickle-free, best first, links into MLflow's runs view."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from collapsetune.cli import main
from collapsetune.names import PATH_TAG, TRIAL_TAG
from collapsetune.report import (
    find_runs,
    format_summary,
    load_summary,
    runs_url,
    ui_base,
)

FIXTURE = Path(__file__).parent / "fixtures" / "atlas_sweep" / "results"


@pytest.fixture
def launch(tmp_path) -> Path:
    """The fixture as a launch whose sweep logged to an MLflow store in tmp_path."""
    folder = tmp_path / "results" / "knobs-20261123-221354"
    shutil.copytree(FIXTURE, folder)
    (folder / "collapsetune.json").write_text(json.dumps({"cwd": str(tmp_path), "base_dir": "", "source": ""}))
    sweep = yaml.safe_load((folder / "sweep.yaml").read_text())
    sweep["mlflow"]["tracking_uri"] = "sqlite:///mlflow.db"  # relative: the launch's cwd, as `run` writes it
    (folder / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    return folder


def _log_sweep(tmp_path: Path, launch: Path) -> tuple[MlflowClient, str, dict[str, str]]:
    """The runs MLflowTracking makes: a parent tagged with the results folder, a child per trial."""
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("knobs")
    parent = client.create_run(experiment, tags={PATH_TAG: str(launch)}).info.run_id
    children = {}
    for trial in sorted(p.name.split("_")[1] + "_" + p.name.split("_")[2] for p in launch.iterdir() if p.is_dir()):
        run = client.create_run(experiment, tags={"mlflow.parentRunId": parent, TRIAL_TAG: trial})
        children[trial] = run.info.run_id
    return client, parent, children


def test_import_of_report_loads_no_ray_torch_or_mlflow():
    # MLflow (seconds to import) is loaded only when a sweep's store is looked up.
    code = ("import sys, collapsetune.report, collapsetune.cli, collapsetune.spec, collapsetune.tracking; "
            "print([m for m in ('ray', 'torch', 'mlflow') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_summary_lists_trials_best_first_then_the_rest(launch):
    summary = load_summary(str(launch))
    statuses = [t.status for t in summary.trials]
    assert statuses == sorted(statuses, key=["healthy", "collapsed", "diverged", "error"].index)
    healthy = [t.metric for t in summary.trials if t.status == "healthy"]
    assert healthy == sorted(healthy) and summary.best.metric == healthy[0]
    text = format_summary(summary)
    assert "14 trials: 8 healthy, 3 collapsed, 1 diverged, 2 error" in text
    assert "at report 5: collapse/unique_tokens=7.942 < 15 for 2 reports" in text
    assert "RuntimeError: loss scale underflow" in text
    assert "collapse atlas: none yet" in text
    assert "collapse.iteration" not in text and "report 0" not in text  # healthy trials have no such report


def test_json_is_strict_and_keeps_its_keys(launch, capsys):
    assert main(["report", str(launch), "--json"]) == 0
    data = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert data["counts"]["collapsed"] == 3 and data["best"]["status"] == "healthy"
    assert {"trial_id", "status", "reason", "iterations", "objective", "metric", "config", "path",
            "mlflow_run_id"} <= set(data["best"])
    diverged = next(t for t in data["trials"] if t["status"] == "diverged")
    assert diverged["metric"] is None  # NaN, written as null


def test_report_links_the_best_run_and_the_runs_view(tmp_path, launch):
    _, _, children = _log_sweep(tmp_path, launch)
    summary = load_summary(str(launch))
    assert summary.best.mlflow_run_id == children[summary.best.trial_id]
    assert summary.runs_url == f"http://127.0.0.1:5000/#/experiments/{summary.experiment_id}/runs?workflowType=machine_learning"
    text = format_summary(summary)
    assert summary.runs_url in text and f"runs/{summary.best.mlflow_run_id}" in text


def test_report_finds_the_runs_the_tracking_callback_wrote(tmp_path, launch):
    # A real SQLite store written by MLflow as a sweep writes it (the driver's callback), with a
    # run in the trash and another launch of the same sweep beside it: report reads it through
    # MLflow's client and finds exactly this launch's live runs.
    from ray.tune.experiment import Trial

    from collapsetune.tracking import MlflowTracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trial_ids = sorted(p.name.split("_")[1] + "_" + p.name.split("_")[2] for p in launch.iterdir() if p.is_dir())
    for path, ids in ((str(tmp_path / "results" / "knobs-earlier"), trial_ids[:2]), (str(launch), trial_ids)):
        tracking = MlflowTracking(uri, "knobs", path)
        tracking.setup()
        trials = [Trial("__fake", trial_id=t, stub=True, config={"lr": 0.1}) for t in ids]
        for trial in trials:
            tracking.on_trial_start(0, [], trial)
            tracking.on_trial_result(0, [], trial, {"training_iteration": 1, "val/loss": 1.0})
            tracking.on_trial_complete(0, [], trial)
        tracking.on_experiment_end(trials)
    runs = dict(tracking._runs)
    MlflowClient(uri).delete_run(runs.pop(trial_ids[3]))  # the trash is not part of the sweep

    summary = load_summary(str(launch))
    assert summary.parent_run_id == tracking.parent_run_id and not any("MLflow" in n for n in summary.notes)
    assert {t.trial_id: t.mlflow_run_id for t in summary.trials if t.mlflow_run_id} == runs
    index = find_runs(uri, "knobs", str(launch))
    assert (index.experiment_id, index.parent_run_id, index.children) == (summary.experiment_id, tracking.parent_run_id, runs)
    assert find_runs(uri, "other", str(launch)).experiment_id == ""
    assert find_runs(uri, "knobs", str(tmp_path / "results" / "never")).parent_run_id == ""
    assert find_runs(f"sqlite:///{tmp_path / 'none.db'}", "knobs", str(launch)).experiment_id == ""
    assert not (tmp_path / "none.db").exists()  # never creates a store


def test_report_on_storage_folder_lists_launches_and_missing_path_says_so(tmp_path, launch, capsys):
    assert main(["report", str(launch.parent)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"1 launch in {launch.parent}") and "8 healthy, 3 collapsed" in out
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no such results folder" in capsys.readouterr().err


def test_report_prints_where_the_atlas_is(launch, capsys):
    (launch / "atlas").mkdir()
    (launch / "atlas" / "atlas.html").write_text("<html></html>")
    assert main(["report", str(launch)]) == 0
    assert f"collapse atlas: {launch / 'atlas' / 'atlas.html'}" in capsys.readouterr().out


def test_tracking_server_link_drops_credentials(launch):
    assert ui_base("http://user:secret@mlflow.internal:8080/") == "http://mlflow.internal:8080"
    assert ui_base("sqlite:///x.db") == "http://127.0.0.1:5000"
    assert runs_url("7", "https://h") == "https://h/#/experiments/7/runs?workflowType=machine_learning"
    sweep = yaml.safe_load((launch / "sweep.yaml").read_text())
    sweep["mlflow"]["tracking_uri"] = "http://user:secret@127.0.0.1:9/"  # nothing listens on port 9
    (launch / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    summary = load_summary(str(launch))
    assert "secret" not in format_summary(summary) and summary.tracking_uri == "http://127.0.0.1:9/"
    assert any("MLflow store not read" in n for n in summary.notes)


def test_report_shows_control_characters_from_user_data_never_sends_them(tmp_path, capsys):
    # A folder name and a collapse reason holding terminal escape codes (retitle,
    # clear the screen, a forged line): printed as visible escapes.
    evil = "\x1b]0;pwned\x07\x1b[2J\r\nFAKE LINE\u202e"
    storage = tmp_path / "results"
    launch = storage / f"knobs{evil}"
    shutil.copytree(FIXTURE, launch)
    for path in launch.rglob("result.json"):
        path.write_text(path.read_text().replace("collapse/unique_tokens=", "collapse/unique_tokens\\u001b[8m="))
    shown = []
    for argv in (["report", str(launch)], ["report", str(storage)], ["report", str(storage / f"gone{evil}")]):
        main(argv)
        captured = capsys.readouterr()
        shown.append(captured.out + captured.err)
    assert "\\x1b[2J\\x0d\\x0aFAKE LINE\\u202e" in shown[0] and "\\x1b[8m=" in shown[0]
    assert "\\x1b]0;pwned\\x07" in shown[1] and "no such results folder" in shown[2]
    for text in shown:
        assert not any(ch in text for ch in "\x1b\x07\r\u202e"), text
        assert not any(line.startswith("FAKE") for line in text.splitlines())


def test_a_pbt_copied_best_trial_says_its_config_is_its_last_and_what_its_folder_is_named_for(launch):
    # The best trial, 00009, collapsed at report 3 and PBT copied trial 00006's report 3 into it
    # with perturbed knobs: the config the summary prints is not the one in its folder's name.
    trial = next(p for p in launch.iterdir() if p.name.startswith("Knobs_2fccd_00009"))
    reports = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
    reports[2]["collapse.status"] = "collapsed"
    reports[3].update({"pbt.donor": "2fccd_00006", "pbt/donor_report": 3})
    (trial / "result.json").write_text("".join(json.dumps(r) + "\n" for r in reports))
    text = format_summary(load_summary(str(launch), mlflow=False))
    assert "rescued when collapsed at report 3: took trial 2fccd_00006's report 3" in text
    assert "    config on its last report, after PBT copied another trial into it (see its why above):" in text
    assert f"    results (its folder is named for its first config, before PBT copied): {trial}" in text
    untouched = format_summary(load_summary(str(FIXTURE), mlflow=False))
    assert "config on its last report" not in untouched and "\n    results: " in untouched


def test_summary_says_the_breaker_stopped_the_sweep_why_and_what_to_do(launch):
    from collapsetune.report import why_healthy

    (launch / "sweep_stopped.json").write_text(json.dumps({"reason": "9 of 10 judged trials collapsed (0.90 > 0.8)",
                                                           "trials": []}))
    text = format_summary(load_summary(str(launch), mlflow=False))
    assert "the sweep was stopped by stop_sweep_when: 9 of 10 judged trials collapsed (0.90 > 0.8)" in text
    assert "Widen the ranges of its anti-collapse knobs" in text and "collapsed_share_above" in text
    assert "stop_sweep_when" not in format_summary(load_summary(str(FIXTURE), mlflow=False))
    assert why_healthy(5, 8, stopped_with_sweep=True).startswith("stopped with the sweep (stop_sweep_when) at report 5")
    assert why_healthy(5, 8).startswith("cut at report 5")


def test_report_on_a_store_of_an_older_mlflow_says_how_to_upgrade_and_changes_nothing(tmp_path, launch, capsys):
    db = tmp_path / "mlflow.db"
    subprocess.run([sys.executable, "-c", "import sys; from mlflow.tracking import MlflowClient; "  # made elsewhere:
                    "MlflowClient(tracking_uri=sys.argv[1]).search_experiments(max_results=1)",  # MLflow keeps an
                    f"sqlite:///{db}"], check=True, timeout=300)  # opened store per process
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE alembic_version SET version_num = '867495a8f9d4'")  # MLflow 2.x's schema
    assert main(["report", str(launch)]) == 0  # the links are lost, the report is not
    out = capsys.readouterr().out
    assert (f"note: MLflow store not read: it holds another MLflow version's schema; back it up, then run "
            f"`mlflow db upgrade sqlite:///{db}`") in out, out
    assert "867495a8f9d4" not in out
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("867495a8f9d4",)
