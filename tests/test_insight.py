"""A sweep's findings on its MLflow parent run, against a real SQLite store fed with a real
sweep's results folder (tests/fixtures/atlas_sweep)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from collapsetune.insight import sweep_params, trial_note
from collapsetune.tracking import publish_sweep
from collapsetune.names import CUSTOM_MODEL_KIND, EXPERIMENT_KIND_TAG, NOTE_TAG, PATH_TAG, TRIAL_TAG
from collapsetune.tracking import create_experiment
from collapsetune.results import read_results

FIXTURE = Path(__file__).parent / "fixtures" / "atlas_sweep" / "results"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One MLflow store for the module (making one costs seconds of schema migrations)."""
    root = tmp_path_factory.mktemp("mlflow")
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    return client, root


def _sweep_runs(client: MlflowClient, root: Path, name: str) -> tuple[Path, str, dict[str, str]]:
    """A launch as MlflowTracking leaves it: results folder, parent run, one child run per trial."""
    launch = root / "results" / name
    shutil.copytree(FIXTURE, launch)
    experiment = create_experiment(client, name, artifact_location=str(root / "artifacts" / name))
    parent = client.create_run(experiment, run_name=name, tags={PATH_TAG: str(launch)}).info.run_id
    children = {}
    for trial in read_results(str(launch)).trials:
        run = client.create_run(experiment, tags={"mlflow.parentRunId": parent, TRIAL_TAG: trial.trial_id})
        children[trial.trial_id] = run.info.run_id
    return launch, parent, children


def test_parent_run_gets_description_params_metrics_and_atlas(store):
    client, root = store
    launch, parent, children = _sweep_runs(client, root, "publish")
    published = publish_sweep(client, parent, str(launch))

    run = client.get_run(parent)
    note = run.data.tags[NOTE_TAG]
    assert note.startswith("## knobs: 3 of 14 trials collapsed")
    best = read_results(str(launch)).best()
    assert (f"[{best.trial_id}](#/experiments/{run.info.experiment_id}/runs/{children[best.trial_id]}"
            "?workflowType=machine_learning)") in note  # without it MLflow's sidebar turns to GenAI
    # a list, not a table: MLflow draws a table's columns with no space between them
    assert ": **collapsed** at report 5 — collapse/unique_tokens=7.942 &lt; 15 for 2 reports" in note
    assert "RuntimeError: loss scale underflow" in note and "atlas/atlas.html" in note

    params = run.data.params
    assert params["search_space.lr"] == "loguniform [0.001, 1.0]"
    assert params["objective"] == "val/loss (min)" and params["collapse.0"].startswith("collapse/unique_tokens < 15")
    assert run.data.metrics["trials/collapsed"] == 3 and run.data.metrics["trials/healthy"] == 8
    assert run.data.metrics["best/val/loss"] == pytest.approx(best.value("val/loss"))

    artifacts = {a.path for a in client.list_artifacts(parent, "atlas")}
    assert {"atlas/atlas.html", "atlas/collapse_rate.png", "atlas/importance.png"} <= artifacts
    assert published.atlas == sorted(artifacts)
    assert (launch / "atlas" / "atlas.html").is_file()  # kept beside the results for `report`

    child = client.get_run(children[best.trial_id]).data.tags[NOTE_TAG]
    assert child == f"healthy: ran all 8 reports; val/loss={best.value('val/loss'):.4g}"
    collapsed = client.get_run(children["2fccd_00008"]).data.tags[NOTE_TAG]
    assert collapsed == "collapsed at report 5: collapse/unique_tokens=7.942 &lt; 15 for 2 reports"
    assert published.child_notes == 14


def test_user_strings_reach_the_descriptions_escaped(store):
    # A choice value that is a Markdown link, and a metric name that is HTML: both come from
    # the user's files, and MLflow renders a run's description as Markdown.
    client, root = store
    link, svg = "[click](javascript:alert(1))", "<svg onload=alert(4)>"
    launch, parent, children = _sweep_runs(client, root, "hostile <img src=x onerror=alert(3)>")
    for path in launch.rglob("*"):
        if path.suffix in (".json", ".yaml"):
            value = f"'{link}'" if path.suffix == ".yaml" else link  # plain text: JSON in JSON stays valid
            text = path.read_text().replace("greedy", value)
            path.write_text(text.replace("collapse/unique_tokens", svg))
    publish_sweep(client, parent, str(launch), atlas=False)

    note = client.get_run(parent).data.tags[NOTE_TAG]
    assert "- `decode`: \\[click\\](javascript:alert(1))" in note  # the best trial's config
    assert "1. &lt;svg onload=alert(4)&gt; &lt; 15 for 2 report(s)" in note  # the rules
    assert "**collapsed** at report 5 — &lt;svg onload=alert(4)&gt;=7.942 &lt; 15 for 2 reports" in note  # why stopped
    assert "`" + str(launch) + "`" in note  # a code span: literal in every renderer
    notes = [note] + [client.get_run(run).data.tags[NOTE_TAG] for run in children.values()]
    assert sum("&lt;svg onload=alert(4)&gt;" in n for n in notes) > 3
    outside_code = [re.sub(r"`[^`]*`", "", n) for n in notes]
    assert [n for n in outside_code if "<" in n or re.search(r"(?<!\\)\]\(javascript", n)] == []


def test_republish_on_resume_keeps_params_and_never_fails(store):
    client, root = store
    launch, parent, _ = _sweep_runs(client, root, "resume")
    first = publish_sweep(client, parent, str(launch), atlas=False)
    assert first.params and not first.changed
    again = publish_sweep(client, parent, str(launch), atlas=False)
    assert not again.params and sorted(again.unchanged) == sorted(first.params)

    # The resolved sweep changed between launches (a hand edit): MLflow refuses a new value
    # for a logged param; the old one stays and a tag says what it is now.
    sweep = yaml.safe_load((launch / "sweep.yaml").read_text())
    sweep["search_space"]["lr"] = {"loguniform": [1.0e-4, 1.0]}
    sweep["config"] = {"note": "added later", "model": {"width": 64}}
    (launch / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    third = publish_sweep(client, parent, str(launch), atlas=False)
    assert third.changed == ["search_space.lr"] and set(third.params) == {"config.note", "config.model.width"}
    run = client.get_run(parent).data
    assert run.params["search_space.lr"] == "loguniform [0.001, 1.0]"
    assert run.tags["collapsetune.param_changed.search_space.lr"] == "now loguniform [0.0001, 1.0]"
    assert run.params["config.model.width"] == "64"
    history = client.get_metric_history(parent, "trials/collapsed")
    assert len(history) == 3 and {m.value for m in history} == {3.0}


def test_params_mlflow_would_refuse_are_renamed_the_same_way_each_time(tmp_path):
    launch = tmp_path / "launch"
    shutil.copytree(FIXTURE, launch)
    sweep = yaml.safe_load((launch / "sweep.yaml").read_text())
    sweep["config"] = {"bad@key!": 1, "x" * 300: 2, "../up": 3, "long": "v" * 7000}
    (launch / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    params = sweep_params(read_results(str(launch)))
    assert params == sweep_params(read_results(str(launch)))
    keys = [k for k in params if k.startswith("config.")]
    assert "config.bad_key_" in keys and all(len(k) <= 250 for k in keys)
    assert all(".." not in k.split("/") for k in keys) and len(params["config.long"]) == 6000


def test_many_trials_keep_the_description_under_mlflows_tag_limit(tmp_path):
    from collapsetune.insight import sweep_note

    results = read_results(str(FIXTURE))
    bad = [t for t in results.trials if t.outcome != "healthy"]
    results.trials = [*results.trials, *[type(t)(**{**t.__dict__, "trial_id": f"x{i:04d}"})
                                          for i, t in enumerate(bad * 100)]]
    note = sweep_note(results)
    assert len(note) <= 8000 and "more: see the atlas" in note and note.rstrip().endswith("`.")


def test_the_description_counts_pbt_copies_and_rescues():
    from collapsetune.insight import sweep_note

    results = read_results(str(FIXTURE))
    assert "PBT" not in sweep_note(results)
    healthy = next(t for t in results.trials if t.outcome == "healthy")
    healthy.copies = ["rescued when collapsed at report 4: took trial 2fccd_00000's report 3"]
    assert ("**PBT** copied a checkpoint into 1 trial(s); 1 of them were rescued after collapsing or diverging, "
            "and 1 of those ended healthy") in sweep_note(results)


def test_trial_note_from_a_last_result():
    collapsed = {"collapse.status": "collapsed", "collapse.iteration": 9, "training_iteration": 9,
                 "collapse.reason": "collapse/unique_tokens=6 < 15 for 3 reports"}
    assert trial_note(collapsed) == "collapsed at report 9: collapse/unique_tokens=6 < 15 for 3 reports"
    assert trial_note({"training_iteration": 4}, state="ERROR",
                      error="Traceback ...\n  File x\nRuntimeError: boom\n") == "failed at report 4: RuntimeError: boom"
    fifo = (FIXTURE / "sweep.yaml").read_text()  # max_iterations 8; rule 1: grace 1 + patience 2
    sweep = fifo.replace("type: fifo", "type: asha")
    cut = {"collapse.status": "healthy", "training_iteration": 2, "val/loss": 2.5, "collapse/unique_tokens": 60,
           "collapse/top1_share": 0.1}
    assert trial_note(cut, sweep=sweep).startswith("unjudged: cut by the scheduler at report 2")
    # FIFO cuts no trial: one that ended early was interrupted (issue 22: a full disk), never "cut".
    assert trial_note(cut, sweep=fifo) == ("inconclusive: interrupted at report 2 of 8 (not cut: the fifo "
                                           "scheduler cuts no trial); val/loss=2.5")
    holding = {**cut, "training_iteration": 5, "collapse/unique_tokens": 9}
    assert trial_note(holding, sweep=sweep).startswith("collapsing: cut by the scheduler at report 5 while "
                                                       "collapse/unique_tokens=9 < 15 for 1 of 2 reports")
    assert trial_note({**cut, "training_iteration": 8}, sweep=sweep) == "healthy: ran all 8 reports; val/loss=2.5"
    assert trial_note({**cut, "training_iteration": 3}, state="RUNNING", sweep=sweep) == "running: report 3 of 8"


def test_experiment_is_tagged_as_model_training(store):
    client, root = store
    made = create_experiment(client, "kind", artifact_location=str(root / "artifacts" / "kind"))
    assert client.get_experiment(made).tags[EXPERIMENT_KIND_TAG] == CUSTOM_MODEL_KIND
    older = client.create_experiment("older", artifact_location=str(root / "artifacts" / "older"))
    assert create_experiment(client, "older") == older  # an existing one gets the tag, keeps its id
    assert client.get_experiment(older).tags[EXPERIMENT_KIND_TAG] == CUSTOM_MODEL_KIND


def test_report_html_links_the_best_trial_to_its_run_or_shows_its_id(store, tmp_path, monkeypatch, capsys):
    # `report --html` rewrote the atlas without any link; a relative `#/experiments/...` link
    # did nothing in a page opened from a file or inside MLflow's artifact viewer.
    from collapsetune.cli import main

    client, root = store
    launch, parent, children = _sweep_runs(client, root, "linked")
    sweep = launch / "sweep.yaml"
    sweep.write_text(sweep.read_text().replace("tracking_uri: null", f"tracking_uri: sqlite:///{root / 'mlflow.db'}")
                     .replace("name: knobs\n", "name: linked\n", 1))  # the experiment _sweep_runs made
    best = read_results(str(launch)).best()
    experiment = client.get_run(parent).info.experiment_id
    monkeypatch.delenv("COLLAPSETUNE_MLFLOW_URL", raising=False)

    assert main(["report", str(launch), "--html", str(tmp_path / "plain")]) == 0
    page = (tmp_path / "plain" / "atlas.html").read_text()
    assert f"MLflow run <code>{children[best.trial_id]}</code>" in page and 'href="#/' not in page
    assert "COLLAPSETUNE_MLFLOW_URL=http://127.0.0.1:P" in capsys.readouterr().out  # the port is a guess: said so

    assert main(["report", str(launch), "--html", str(tmp_path / "linked"), "--mlflow-url", "http://127.0.0.1:5123/"]) == 0
    page = (tmp_path / "linked" / "atlas.html").read_text()
    url = f"http://127.0.0.1:5123/#/experiments/{experiment}/runs/{children[best.trial_id]}?workflowType=machine_learning"
    assert f'href="{url}" target="_top"' in page and f">{url}</a>" in page  # a link, and its address to copy
    out = capsys.readouterr().out
    assert f"mlflow run: {url}" in out and f"mlflow run id: {children[best.trial_id]}" in out
    assert "ran all" in out or "cut at report" in out  # says which way the best trial counts as healthy
