"""The collapse atlas from a real sweep's results: every panel, and each one degrading
gracefully (one trial, no collapse, no search space, no rules)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import yaml

from collapsetune.atlas import TITLES, write_atlas
from collapsetune.atlas._panels import collapse_rates, importance, knobs, pareto, trajectories
from collapsetune.cli import main
from collapsetune.results import read_results

FIXTURE = Path(__file__).parent / "fixtures" / "atlas_sweep" / "results"
PNGS = {"parallel_coordinates.png", "collapse_rate.png", "pareto_front.png", "importance.png"}


def _copy(tmp_path: Path, keep=lambda trial: True, sweep=lambda s: s) -> Path:
    """The fixture with only some trials (Ray's snapshot dropped: folders are read instead)
    and an edited sweep.yaml."""
    out = tmp_path / "launch"
    shutil.copytree(FIXTURE, out)
    for trial in [p for p in out.iterdir() if p.is_dir()]:
        if not keep(trial.name):
            shutil.rmtree(trial)
    for state in out.glob("experiment_state-*.json"):
        state.unlink()
    (out / "sweep.yaml").write_text(yaml.safe_dump(sweep(yaml.safe_load((out / "sweep.yaml").read_text()))))
    return out


def _page(folder: Path) -> str:
    return (folder / "atlas.html").read_text()


def test_atlas_has_every_panel_as_html_and_png(tmp_path):
    results = read_results(str(FIXTURE))
    page = write_atlas(results, tmp_path / "atlas", run_links={results.best().trial_id: "http://x/run"})
    html = page.read_text()
    for title in (TITLES[0], TITLES[1], TITLES[3], TITLES[4]):
        assert title in html
    for metric in ("collapse/unique_tokens", "collapse/top1_share"):
        assert TITLES[2].format(metric=metric) in html
    assert "cdn" not in html.lower().split("<body>")[1][:2000]  # nothing fetched: plotly.js is inline
    assert html.count("Plotly.newPlot") >= 6 and len(html) > 3_000_000
    assert 'href="http://x/run"' in html and "Best healthy trial" in html
    assert PNGS | {"trajectories_collapse_unique_tokens.png", "trajectories_collapse_top1_share.png"} <= {
        p.name for p in page.parent.iterdir()}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
               for p in page.parent.glob("*.png"))


def test_panels_hold_what_the_trials_did():
    results = read_results(str(FIXTURE))
    ks = {k.name: k for k in knobs(results)}
    assert ks["lr"].scale == "log" and ks["decode"].scale == "categorical" and ks["seed"].scale == "linear"
    assert ks["decode"].categories == ["greedy", "sample"]
    rates = collapse_rates(results)
    assert sum(b.collapsed for b in rates.per_knob["decode"]) == 3
    assert sum(b.judged for b in rates.per_knob["decode"]) == 12  # errored trials have no verdict
    (tokens, top1) = trajectories(results)
    assert tokens.metric == "collapse/unique_tokens" and [v for v, _ in tokens.thresholds] == [15, 30]
    collapsed = [ln for ln in tokens.lines if ln.outcome == "collapsed"]
    assert sorted(ln.stopped[0] for ln in collapsed) == [3, 3, 5]
    assert all(ln.stopped is None for ln in tokens.lines if ln.outcome == "healthy")
    front = pareto(results)
    assert front.x_metric == "collapse/unique_tokens" and front.front
    assert all(p.outcome == "healthy" for p in front.front)
    best = results.best()
    assert any(p.trial_id == best.trial_id for p in front.front)  # the lowest loss is on the front
    imp = importance(results)
    assert imp.knobs == ["lr", "label_smoothing", "decode", "seed"]
    assert math.isclose(sum(imp.collapse), 1.0) and math.isclose(sum(imp.objective), 1.0)


def test_atlas_of_one_trial(tmp_path):
    results = read_results(str(_copy(tmp_path, keep=lambda name: "_00009_" in name)))
    assert len(results.trials) == 1
    out = write_atlas(results, tmp_path / "atlas").parent
    html = _page(out)
    assert "needs 4 judged trials, has 1" in html and "needs 4 healthy trials, has 1" in html
    assert PNGS <= {p.name for p in out.iterdir()}


def test_atlas_with_no_collapse(tmp_path):
    healthy = {"_00001_", "_00005_", "_00006_", "_00009_", "_00010_", "_00011_"}
    results = read_results(str(_copy(tmp_path, keep=lambda name: any(h in name for h in healthy))))
    assert set(results.counts()) == {"healthy"}
    html = _page(write_atlas(results, tmp_path / "atlas").parent)
    assert "no trial collapsed (6 judged)" in html and "stayed free of collapse" in html
    assert TITLES[4] in html


def test_atlas_without_search_space_or_rules(tmp_path):
    def bare(sweep: dict) -> dict:
        return {**sweep, "search_space": {}, "collapse": []}

    results = read_results(str(_copy(tmp_path, sweep=bare)))
    assert not results.sweep.rules and not results.sweep.search_space
    # Without a search space the knobs are the config keys that differ between trials.
    assert {k.name for k in knobs(results)} == {"lr", "label_smoothing", "decode", "seed"}
    # Without rules the trajectories are every reported collapse/* metric, with no threshold.
    assert [t.metric for t in trajectories(results)] == ["collapse/top1_share", "collapse/unique_tokens"]
    assert all(not t.thresholds for t in trajectories(results))
    html = _page(write_atlas(results, tmp_path / "atlas").parent)
    assert "no collapse rule, so no diversity metric" in html


def test_atlas_when_no_knob_varies(tmp_path):
    def decode_only(sweep: dict) -> dict:
        return {**sweep, "search_space": {"decode": {"choice": ["greedy", "sample"]}}}

    greedy = ("_00003_", "_00006_", "_00008_", "_00009_", "_00011_", "_00012_")  # 4 healthy, 2 collapsed
    launch = _copy(tmp_path, keep=lambda name: any(g in name for g in greedy), sweep=decode_only)
    results = read_results(str(launch))
    assert importance(results).collapse_note == "no knob takes more than one value"
    html = _page(write_atlas(results, tmp_path / "atlas").parent)
    assert "no knob takes more than one value" in html and "greedy" in html


def test_report_html_writes_the_atlas_into_the_results_folder(tmp_path, capsys):
    launch = _copy(tmp_path, keep=lambda name: "_00009_" in name or "_00003_" in name)
    assert main(["report", str(launch), "--html"]) == 0
    out = capsys.readouterr().out
    assert f"collapse atlas: {launch / 'atlas' / 'atlas.html'}" in out
    assert (launch / "atlas" / "collapse_rate.png").is_file()
    assert main(["report", str(launch), "--html", str(tmp_path / "elsewhere"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["atlas"] == str(tmp_path / "elsewhere" / "atlas.html")
