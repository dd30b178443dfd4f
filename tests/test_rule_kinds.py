"""Driven by the condition registry (collapsetune.collapse.KINDS and MODIFIERS): `report`, the
atlas and MLflow's notes read a rule of every kind, and every modifier on each kind it applies
to, through collapse/, so a new kind needs no edit outside collapse/. A kind a newer version
wrote is shown as unknown, and the folder still reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from collapsetune.atlas._panels import collapse_rates, diversity_direction, pareto, trajectories
from collapsetune.cli import main
from collapsetune.collapse import (
    COLLAPSED,
    ITERATION_KEY,
    KINDS,
    MODIFIERS,
    REASON_KEY,
    STATUS_KEY,
    UNJUDGED,
    CollapseMonitor,
    Rule,
    parse_condition,
)
from collapsetune.errors import SpecError
from collapsetune.insight import sweep_params
from collapsetune.names import REPORTS_FILE
from collapsetune.results import read_results

VALUE = 0.5  # a bound, or a fraction, that every kind accepts
MODIFIER_ARGS = {"unless_improving": {"by": 1.0, "over": 2}}  # a new modifier: add its example here
MAX_ITERATIONS = 8
FALLING = [1.0, 0.9, 0.8, 0.6, 0.4, 0.2, 0.1, 0.1]
RISING = FALLING[::-1]


def _every_condition() -> list[dict]:
    out = []
    for kind in KINDS:
        out.append({"metric": f"collapse/{kind}", kind: VALUE})
        for name, args in MODIFIER_ARGS.items():
            raw = {"metric": f"collapse/{kind}_{name}", kind: VALUE, name: args}
            try:
                parse_condition(raw)
            except SpecError:
                continue  # the modifier does not apply to this kind
            out.append(raw)
    return out


CONDITIONS = _every_condition()


def _reports(trial_id: str, rules: list[dict], values: list[float]) -> list[dict]:
    """A trial's reports with the verdicts the trainable's own monitor gives them (a newer
    version's monitor: it has the rules this one cannot read, which here never fire)."""
    read = [Rule.read(r) for r in rules]
    monitor = CollapseMonitor([r for r in read if r.known])
    metrics = {c.metric for r in read for c in r.conditions}
    out = []
    for i, v in enumerate(values):
        report = {"val/loss": 2.0 - 0.1 * i, "train/loss": 2.0 - 0.1 * i, **{m: v for m in metrics}}
        verdict = monitor.update(report)
        out.append({**report, "training_iteration": i + 1, "trial_id": trial_id, STATUS_KEY: verdict.status,
                    REASON_KEY: verdict.reason, ITERATION_KEY: verdict.iteration})
        if verdict.stopping:
            break
    out[-1]["done"] = True
    return out


def _launch(tmp_path: Path, rules: list[dict]) -> Path:
    """A results folder as `run` leaves it (no Ray snapshot: trials are read from their
    folders): a falling and a rising trial, and one an older trainable called healthy when
    the scheduler cut it at its first report."""
    folder = tmp_path / "results" / "kinds-20270101-000000"
    folder.mkdir(parents=True)
    (folder / "sweep.yaml").write_text(yaml.safe_dump({
        "name": "kinds", "trainable": "x:Y", "objective": {"metric": "val/loss", "mode": "min"},
        "max_iterations": MAX_ITERATIONS, "search_space": {"lr": {"loguniform": [1.0e-4, 1.0e-1]}},
        "collapse": rules, "mlflow": {"tracking_uri": None}}))
    cut = _reports("cut", rules, [VALUE])  # on the bound: no kind holds
    cut[-1].update({STATUS_KEY: "healthy", REASON_KEY: ""})
    trials = {"falling": _reports("falling", rules, FALLING), "rising": _reports("rising", rules, RISING), "cut": cut}
    for i, (name, reports) in enumerate(trials.items()):
        trial = folder / f"T_{name}"
        trial.mkdir()
        (trial / "params.json").write_text(json.dumps({"lr": 10.0 ** -(i + 1)}))
        (trial / REPORTS_FILE).write_text("".join(json.dumps(r) + "\n" for r in reports))
    return folder


def test_every_modifier_has_an_example_that_applies_to_some_kind():
    assert set(MODIFIER_ARGS) == set(MODIFIERS)
    assert all(any(name in raw for raw in CONDITIONS) for name in MODIFIERS)


@pytest.mark.parametrize("raw", CONDITIONS, ids=[c["metric"] for c in CONDITIONS])
def test_report_and_atlas_read_a_rule_of_every_kind(tmp_path, capsys, raw):
    rule = {**raw, "patience": 2}
    expected = Rule.from_yaml(rule)
    (condition,) = expected.conditions
    folder = _launch(tmp_path, [rule])
    results = read_results(str(folder))

    assert results.sweep.rules == (expected,) and results.sweep.rules[0].known
    assert results.sweep.horizon == expected.earliest_report
    outcomes = {t.trial_id: (t.outcome, t.note) for t in results.trials}
    written = {t.trial_id: t.reports[-1][STATUS_KEY] for t in results.trials}
    assert COLLAPSED in {outcomes["falling"][0], outcomes["rising"][0]}  # the kind was evaluated
    assert outcomes["falling"][0] == written["falling"] and outcomes["rising"][0] == written["rising"]
    outcome, note = outcomes["cut"]  # before the rule could fire: never healthy
    assert outcome == UNJUDGED and f"can judge from report {expected.earliest_report}" in note

    assert main(["report", str(folder), "--json"]) == 0
    rows = {row["trial_id"]: row["status"] for row in json.loads(capsys.readouterr().out)["trials"]}
    assert rows == {k: v for k, (v, _) in outcomes.items()}

    (chart,) = trajectories(results)
    assert chart.metric == condition.metric and len(chart.lines) == 3
    bound = [] if condition.threshold is None else [(condition.threshold, f"rule 1: {condition.bound()}")]
    assert chart.thresholds == bound
    assert diversity_direction(results) == ("max" if condition.falls else "min")
    assert collapse_rates(results).per_knob["lr"] and pareto(results).x_metric == condition.metric
    assert sweep_params(results)["collapse.0"] == f"{condition.text()}, patience 2, grace 0"
    assert "unknown" not in condition.text()


def test_a_rule_kind_a_newer_version_wrote_is_shown_as_unknown(tmp_path, capsys):
    newer = {"metric": "collapse/entropy", "trend": -0.1, "patience": 2}
    known = {"metric": "collapse/below", "below": VALUE, "patience": 2}
    folder = _launch(tmp_path, [newer, known])
    results = read_results(str(folder))
    unknown, rule = results.sweep.rules
    assert not unknown.known and unknown.text() == "collapse/entropy (unknown rule kind: trend)"
    assert rule.known and results.sweep.collapse_metrics == ["collapse/entropy", "collapse/below"]
    assert sweep_params(results)["collapse.0"] == "collapse/entropy (unknown rule kind: trend), patience 2, grace 0"
    # The rule it reads still judges; the one it cannot leaves the trainable's verdict as written.
    outcomes = {t.trial_id: t.outcome for t in results.trials}
    assert outcomes == {"falling": COLLAPSED, "rising": COLLAPSED, "cut": UNJUDGED}
    assert main(["report", str(folder), "--html"]) == 0
    assert "kinds" in capsys.readouterr().out and (folder / "atlas" / "atlas.html").is_file()
    charts = {c.metric: c.thresholds for c in trajectories(results)}
    assert charts == {"collapse/entropy": [], "collapse/below": [(VALUE, "rule 2: < 0.5")]}
