"""Collapse-aware vs plain sweeps, side by side in one process (issue 6, items 1 and 2).

For a benchmark sweep file and each seed, three sweeps run one after another on one
embedded Ray, over the same search space, the same configurations (random search with the
seed; `config.seed` is the seed too) and the same trial budget:

  fifo          every trial to max_iterations; no collapse rules, objective = raw metric
  plain         ASHA on the raw metric, no collapse rules: plain Ray Tune (CollapseASHA with
                no rules is Ray's ASHAScheduler: it only rewrites rungs of non-healthy trials)
  collapsetune  the file as written: rules, penalised objective, CollapseASHA, CollapseStopper

and an oracle computed from fifo's full trajectories, which stops every trial that ends
collapsed exactly at its onset. MLflow is off in all three (its cost is in overhead.py).

Definitions (one rule of the file = its conditions, grace and patience):
  collapsed at end  some rule's conditions hold on the trial's last `patience` reports
  onset             the first report of the final run of reports on which they hold
  transient         the conditions held for `patience` reports after `grace` (the rule
                    could fire) but the trial is not collapsed at end: it recovered
  compute           trial-iterations (reports) and CPU-seconds (`time/cpu_s`, which counts
                    model and data set-up and checkpointing too)

Run:  python benchmarks/compare.py benchmarks/sweeps/bitnet_lm.yaml --seeds 0 1 2
Writes benchmarks/results/compare_<trainable>.json, docs/plots/compare_<trainable>.png and
prints markdown tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "fifo": ["collapse=[]", "scheduler={type: fifo}"],
    "plain": ["collapse=[]"],
    "collapsetune": [],
}


@dataclass
class Trial:
    """One trial's reports, as plain dicts (one per report, in order)."""

    key: str  # the searched configuration, to match a trial across the three sweeps
    reports: list[dict]

    @property
    def cpu_s(self) -> float:
        return sum(r["time/cpu_s"] for r in self.reports)

    def stopped_collapsed(self) -> bool:
        return self.reports[-1].get("collapse.status") == "collapsed"


def onset(rules, reports: list[dict]) -> int | None:
    """1-based report where a lasting collapse began, or None if the trial ends healthy."""
    starts = []
    for rule in rules:
        check = dataclasses.replace(rule, grace=0).build()  # when the conditions held, grace aside
        flags = []
        for report in reports:
            check.update(report)
            flags.append(check.holding)
        if len(flags) >= rule.patience and all(flags[-rule.patience:]):
            start = len(flags)
            while start > 1 and flags[start - 2]:
                start -= 1
            starts.append(start)
    return min(starts) if starts else None


def could_fire(rules, reports: list[dict]) -> bool:
    """Whether some rule, grace and patience included, would have fired on these reports."""
    fresh = [rule.build() for rule in rules]
    return any(rule.update(report) for report in reports for rule in fresh)


@dataclass
class Outcome:
    variant: str
    seed: int
    wall_s: float
    iterations: int
    cpu_s: float
    stopped_collapsed: int = 0
    reports_after_onset: list[int] = field(default_factory=list)  # per stopped trial with a lasting collapse
    stopped_recovering: int = 0  # stopped trials whose fifo twin ended healthy
    stopped: list[dict] = field(default_factory=list)  # each stopped trial: report, and its fifo twin's course
    same_as_fifo: int = 0  # trials whose reports equal their fifo twin's first reports
    best_key: str = ""
    best_metric: float = float("nan")
    best_collapsed: bool = False  # the picked trial, judged by its own last reports
    best_at_end: dict = field(default_factory=dict)  # the rules' metrics on its last report


def oracle(trials: list[Trial], rules) -> tuple[int, float]:
    """Compute if every trial that ends collapsed had been stopped at its onset report."""
    iterations, cpu = 0, 0.0
    for t in trials:
        stop = onset(rules, t.reports) or len(t.reports)
        iterations += stop
        cpu += sum(r["time/cpu_s"] for r in t.reports[:stop])
    return iterations, cpu


def outcome(variant: str, seed: int, wall: float, trials: list[Trial], best: Trial,
            fifo: dict[str, Trial] | None, spec) -> Outcome:
    rules, metric = spec.collapse, spec.objective.metric
    watched = sorted({c.metric for rule in rules for c in rule.conditions})
    out = Outcome(variant, seed, wall, sum(len(t.reports) for t in trials), sum(t.cpu_s for t in trials))
    for t in trials:
        twin = fifo.get(t.key) if fifo else None
        if twin and [r[metric] for r in t.reports] == [r[metric] for r in twin.reports[:len(t.reports)]]:
            out.same_as_fifo += 1  # training is deterministic: onsets from fifo apply here
        if not t.stopped_collapsed():
            continue
        out.stopped_collapsed += 1
        if twin is None:
            continue
        began = onset(rules, twin.reports)
        out.stopped.append({"key": t.key, "stopped_at": len(t.reports), "fifo_onset": began,
                            "fifo": {m: [r[m] for r in twin.reports] for m in watched}})
        if began is None:
            out.stopped_recovering += 1
        else:
            out.reports_after_onset.append(len(t.reports) - began)
    last = best.reports[-1]
    out.best_key, out.best_metric = best.key, float(last[metric])
    out.best_collapsed = onset(rules, best.reports) is not None
    out.best_at_end = {m: float(last[m]) for m in watched}
    return out


def fit(spec, folder: str, label: str):
    """Runs a loaded sweep as `collapsetune run` builds it, in this process's Ray; returns
    (wall seconds of fit(), Ray's ResultGrid). A failed trial raises: the benchmarks count
    whole sweeps only."""
    from collapsetune.launch import build_tuner, check_resources

    tuner = build_tuner(spec, folder, check_resources(spec))
    start = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - start
    for result in grid:
        if result.error:
            raise RuntimeError(f"{label}: a trial failed: {result.error}")
    return wall, grid


def machine() -> str:
    """The machine line every benchmark's JSON carries."""
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_json(path: Path, doc: dict) -> None:
    """`doc` as indented JSON at `path`, atomically: a run stopped mid-write leaves the last whole file."""
    from collapsetune._atomic import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=2))


def trial_reports(result) -> list[dict]:
    """Every report a trial made, in order: collapsetune's own record (`REPORTS_FILE`, which
    keeps the reports Ray's result.json loses when PBT pauses and resumes a trial, and a
    rescued trial's reports before and after its copy), or Ray's metrics where there is none."""
    from collapsetune.names import REPORTS_FILE

    record = Path(result.path) / REPORTS_FILE
    if record.exists():
        return [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
    frame = result.metrics_dataframe
    return [] if frame is None else frame.to_dict("records")


def run_variant(sweep: Path, variant: str, seed: int, storage: Path, overrides: list[str]):
    """Runs one sweep; returns (spec as written, wall seconds, trials, the trial Tune picks)."""
    from collapsetune.spec import load_sweep

    seeding = [*overrides, f"search.seed={seed}", f"config.seed={seed}", f"storage={storage}"]
    spec = load_sweep(sweep, seeding + VARIANTS[variant])
    wall, grid = fit(spec, f"{storage}/{spec.name}-{variant}-{seed}", f"{variant} seed {seed}")
    searched = sorted(spec.search_space)
    trials, best = [], None
    picked = grid.get_best_result(metric="objective", mode=spec.objective.mode, scope="last")
    for result in grid:
        reports = trial_reports(result)
        trial = Trial(json.dumps({k: result.config[k] for k in searched}, sort_keys=True), reports)
        trials.append(trial)
        if result.path == picked.path:
            best = trial
    return load_sweep(sweep, seeding), wall, trials, best


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    return f"{med:.4g} [{min(values):.4g}-{max(values):.4g}]" if len(values) > 1 else f"{med:.4g}"


def table(outcomes: list[Outcome], oracles: list[tuple[int, float]]) -> str:
    rows = [("| sweep | trial-iterations | CPU-s | wall s | stopped for collapse | reports after onset "
             "| stopped but would recover | picked trial collapsed | picked trial's metric |"),
            "|---|---|---|---|---|---|---|---|---|"]
    for variant in VARIANTS:
        own = [o for o in outcomes if o.variant == variant]
        after = [n for o in own for n in o.reports_after_onset]
        rows.append(
            f"| {variant} | {spread([o.iterations for o in own])} | {spread([o.cpu_s for o in own])} "
            f"| {spread([o.wall_s for o in own])} | {sum(o.stopped_collapsed for o in own)} "
            f"| {spread(after)} | {sum(o.stopped_recovering for o in own)} "
            f"| {sum(o.best_collapsed for o in own)} of {len(own)} | {spread([o.best_metric for o in own])} |")
    rows.append(f"| oracle (fifo stopped at onset) | {spread([i for i, _ in oracles])} "
                f"| {spread([c for _, c in oracles])} | - | - | 0 | 0 | - | - |")
    return "\n".join(rows)


def ratios(outcomes: list[Outcome], oracles: list[tuple[int, float]]) -> dict[str, str]:
    """Medians over seeds of per-seed ratios (each seed's sweeps share their configurations)."""
    seeds = list(dict.fromkeys(o.seed for o in outcomes))  # the order the oracles were made in
    by = {(o.variant, o.seed): o for o in outcomes}
    costs = {v: [(by[v, s].iterations, by[v, s].cpu_s) for s in seeds] for v in VARIANTS}
    costs["oracle"] = oracles
    out = {}
    for num, den in (("collapsetune", "fifo"), ("plain", "fifo"), ("collapsetune", "plain"),
                     ("collapsetune", "oracle")):
        pairs = list(zip(costs[num], costs[den]))
        out[f"{num} / {den} CPU-s"] = spread([a[1] / b[1] for a, b in pairs])
        out[f"{num} / {den} iterations"] = spread([a[0] / b[0] for a, b in pairs])
    return out


def plot(path: Path, spec, fifo: list[Trial], stopped: list[Trial], outcomes, oracles) -> None:
    from collapsetune.plots import plt, save_figure  # pyplot on the Agg backend

    condition = spec.collapse[0].conditions[0]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    rules = spec.collapse
    for t in fifo:
        values = [r[condition.metric] for r in t.reports]
        colour = "tab:red" if onset(rules, t.reports) else "tab:orange" if could_fire(rules, t.reports) else "grey"
        left.plot(range(1, len(values) + 1), values, color=colour, alpha=0.8, lw=1)
    for t in stopped:
        left.plot(len(t.reports), t.reports[-1][condition.metric], "kx", ms=8)
    if getattr(condition, "value", None) is not None:  # Below / Above have a line; other kinds (fell_from_best) not
        left.axhline(condition.value, ls="--", color="k", lw=0.8)
    left.set(xlabel="report", ylabel=condition.metric,
             title=f"fifo, seed {outcomes[0].seed}: red ends collapsed, orange recovers;\nx = collapsetune stopped it")
    names = list(VARIANTS) + ["oracle"]
    per = [[o.cpu_s for o in outcomes if o.variant == v] for v in VARIANTS] + [[c for _, c in oracles]]
    meds = [statistics.median(v) for v in per]
    err = [[m - min(v) for m, v in zip(meds, per)], [max(v) - m for m, v in zip(meds, per)]]
    right.bar(names, meds, yerr=err, capsize=4, color=["grey", "tab:blue", "tab:green", "white"], edgecolor="k")
    right.set(ylabel="CPU-seconds per sweep (median, min-max over seeds)", title=spec.name)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the embedded Ray (= trial slots)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of the sweep file in all three sweeps, e.g. collapse.0.patience=3")
    parser.add_argument("--tag", default="", help="suffix of the output files, for a run with --set")
    args = parser.parse_args()
    import ray

    started = time.perf_counter()
    outcomes, oracles, first = [], [], None
    with tempfile.TemporaryDirectory() as storage:
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        try:
            for i, seed in enumerate(args.seeds):
                # Rotate the order, so no variant always runs first (cold caches) or last.
                order = list(VARIANTS)[i % 3:] + list(VARIANTS)[:i % 3]
                runs = {v: run_variant(args.sweep, v, seed, Path(storage), args.set) for v in order}
                spec = runs["collapsetune"][0]
                fifo = {t.key: t for t in runs["fifo"][2]}
                for variant in VARIANTS:
                    _, wall, trials, best = runs[variant]
                    outcomes.append(outcome(variant, seed, wall, trials, best, fifo, spec))
                oracles.append(oracle(runs["fifo"][2], spec.collapse))
                if first is None:
                    first = (spec, runs["fifo"][2], [t for t in runs["collapsetune"][2] if t.stopped_collapsed()])
                print(table(outcomes, oracles), flush=True)
        finally:
            ray.shutdown()
    spec = first[0]
    transient = sum(could_fire(spec.collapse, t.reports) and not onset(spec.collapse, t.reports) for t in first[1])
    summary = {
        "sweep": str(args.sweep), "seeds": args.seeds, "trials_per_sweep": spec.num_samples,
        "command": " ".join(["python benchmarks/compare.py", str(args.sweep), "--seeds", *map(str, args.seeds),
                             *(f"--set '{o}'" for o in args.set), *(["--tag", args.tag] if args.tag else [])]),
        "overrides": args.set,
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"), "total_wall_s": time.perf_counter() - started,
        "ratios": ratios(outcomes, oracles), "fifo_transient_trials_seed0": transient,
        "oracle": [{"seed": s, "iterations": i, "cpu_s": c} for s, (i, c) in zip(args.seeds, oracles)],
        "outcomes": [asdict(o) for o in outcomes],
    }
    name = spec.trainable + (f"_{args.tag}" if args.tag else "")
    out = ROOT / "benchmarks" / "results" / f"compare_{name}.json"
    write_json(out, summary)
    plot(ROOT / "docs" / "plots" / f"compare_{name}.png", spec, first[1], first[2],
         [o for o in outcomes], oracles)
    print(f"\n{spec.name}: {spec.num_samples} trials per sweep, seeds {args.seeds}\n")
    print(table(outcomes, oracles))
    for key, value in summary["ratios"].items():
        print(f"{key}: {value}")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
