"""What a report costs a trial: collapsetune's trainable against plain Ray Tune (issue 29).

One sweep's config, one process, CPU time of that process (all its threads) per report:

  plain          a Ray Tune function trainable that builds the same wrapper and calls
                 `tune.report(wrapper.step())`: what a user writes instead
  before         collapsetune's trainable with the picture schedule it had before issue 29:
                 pictures on reports 1, 2, 4, 8, ..., the verdict's and the last
  draw_cut       the trainable with `draw_cut_trials: true`: pictures on the verdict's
                 report, the last, and in the checkpoint a trial ends with (Tune saves one as
                 any trial ends), so a cut trial is drawn too (the default until 2026-12-05)
  collapsetune   the trainable as shipped: pictures only on the verdict's report and the last;
                 a trial ASHA cuts is not drawn

each on three trials a sweep runs (the sweep's `points_to_evaluate`): `full`, the fix run to
`max_iterations`; `cut`, the fix cut by ASHA at its grace period (the first rung); `collapsed`,
the collapsing setting stopped on its verdict's report (the plain side runs as many reports).
A trial's cost is every `train()` call plus, on collapsetune's sides, the checkpoint Tune saves
as the trial ends (where `draw_cut` draws a cut trial's pictures; it is in no report's
`time/cpu_s`, and counted here), and building the wrapper (`setup_cpu_s`: a function
trainable builds it inside its first report, a class trainable before it). The
trainables run in this process, driven as Tune drives them (`train()`, `save()`, `stop()`),
on an embedded Ray started once and not counted; repeats rotate the order of the sides.

Every picture is timed by the `collapsetune.plots` function that draws it, and each
checkpoint write, so the table says what each artifact costs. `checkpoint_interval_s` (the
shipped default, 60 s) is checked too: how many reports asked for a checkpoint.

Run:  python benchmarks/report_cost.py [--sweep sweeps/mop_clip.yaml] [--repeats 2]
Prints a table and writes benchmarks/results/report_cost.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIDES = ("plain", "before", "draw_cut", "collapsetune")
CASES = ("full", "cut", "collapsed")


# -- bookkeeping (pure; tests/benchmarks/test_report_cost.py) ----------------------------


def per_report(trial: dict) -> float:
    """A trial's CPU seconds per report: building it (a function trainable builds its wrapper
    inside its first report, a class trainable in setup), its reports and its end-of-trial
    checkpoint."""
    cost = trial.get("setup_cpu_s", 0.0) + sum(trial["report_cpu_s"]) + trial["end_cpu_s"]
    return cost / len(trial["report_cpu_s"])


def summarise(trials: list[dict]) -> dict:
    """Per side: the median CPU per report of each case's trials, `all` (every trial's CPU
    over every trial's reports, as a sweep of such trials adds up), and each of these as a
    ratio to plain's."""
    by: dict[tuple[str, str], list[float]] = defaultdict(list)
    cpu: dict[str, float] = defaultdict(float)
    reports: dict[str, int] = defaultdict(int)
    for t in trials:
        by[t["side"], t["case"]].append(per_report(t))
        cpu[t["side"]] += per_report(t) * len(t["report_cpu_s"])
        reports[t["side"]] += len(t["report_cpu_s"])
    out: dict = {}
    for side in dict.fromkeys(t["side"] for t in trials):
        row = {case: statistics.median(v) for (s, case), v in by.items() if s == side}
        row["all"] = cpu[side] / reports[side]
        out[side] = row
    if "plain" in out:
        for side, row in out.items():
            row["ratio_to_plain"] = {case: row[case] / out["plain"][case] for case in row
                                     if case in out["plain"] and out["plain"][case] > 0}
    return out


def artifact_costs(trials: list[dict]) -> dict[str, dict[str, float]]:
    """Per drawing function (and checkpoint write): calls per trial and median CPU per call."""
    calls: dict[str, list[float]] = defaultdict(list)
    for t in trials:
        for name, costs in t["artifacts"].items():
            calls[name].extend(costs)
    n = len(trials) or 1
    return {name: {"calls_per_trial": len(c) / n, "median_cpu_s": statistics.median(c)} for name, c in calls.items()}


# -- measuring -------------------------------------------------------------------------


class Meter:
    """Accumulates the CPU time of chosen functions, per trial."""

    def __init__(self) -> None:
        self.calls: dict[str, list[float]] = defaultdict(list)

    def wrap(self, owner, name: str, label: str) -> None:
        fn = getattr(owner, name)

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.calls[label].append(time.process_time() - start)

        setattr(owner, name, timed)

    def take(self) -> dict[str, list[float]]:
        out, self.calls = dict(self.calls), defaultdict(list)
        return out


def before_class(shipped: type) -> type:
    """The shipped trainable with the picture schedule it had before issue 29."""

    class Before(shipped):
        def _pictures_due(self, report: int, turned: bool) -> bool:
            last = report >= int(self.config.get("max_iterations", 0))
            return hasattr(self.wrapper, "write_artifacts") and (report & (report - 1) == 0 or turned or last)

        def save_checkpoint(self, checkpoint_dir: str) -> None:
            self._drawn_at = self.iteration  # it drew nothing as a trial ended
            super().save_checkpoint(checkpoint_dir)

    return Before


def plain_function(wrapper_cls: type, reports: int):
    """What a user writes instead: the same wrapper in a function trainable."""
    from ray import tune

    def train(config: dict) -> None:
        wrapper = wrapper_cls(dict(config))
        for _ in range(reports):
            tune.report(wrapper.step())

    return train


def run_trial(side: str, case: str, cls: type, config: dict, reports: int | None, storage_root: str,
              name: str, meter: Meter, stop_on_verdict: bool) -> dict:
    """One trial driven as Tune drives it; `reports` None: until the verdict stops it."""
    from ray import tune
    from ray.train._internal.storage import StorageContext

    storage = StorageContext(storage_path=storage_root, experiment_dir_name="report_cost",
                             sync_config=tune.SyncConfig(sync_artifacts=True), trial_dir_name=name)
    meter.take()
    start = time.process_time()
    trial = cls(config=dict(config), storage=storage)
    setup = time.process_time() - start
    cpu, asked = [], 0
    while True:
        start = time.process_time()
        result = trial.train()
        cpu.append(time.process_time() - start)
        asked += bool(result.get("should_checkpoint"))
        if reports is not None and len(cpu) >= reports:
            break
        if stop_on_verdict and result.get("collapse.status") in ("collapsed", "diverged"):
            break
        if len(cpu) >= int(config["max_iterations"]):
            break
    start = time.process_time()
    if side != "plain":
        trial.save()  # Tune's checkpoint_at_end: as any trial ends, ASHA's cut and the stopper's included
    end = time.process_time() - start
    trial.stop()
    return {"side": side, "case": case, "setup_cpu_s": setup, "report_cpu_s": cpu, "end_cpu_s": end,
            "checkpoints_asked": asked, "artifacts": meter.take()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sweep", default=str(ROOT / "sweeps" / "mop_clip.yaml"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "report_cost.json"))
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()  # now: a trainable driven in this process changes the working directory

    import ray
    import torch
    from ray.tune.trainable.function_trainable import wrap_function

    from collapsetune import plots, trainable as trainable_module
    from collapsetune.launch import _trainable, wrapper_class
    from collapsetune.spec import load_sweep, param_space

    spec = load_sweep(args.sweep)
    points = spec.search.points_to_evaluate
    if len(points) < 2:
        raise SystemExit(f"{args.sweep}: search.points_to_evaluate needs the collapsing setting and its fix")
    fixed = {k: v for k, v in param_space(spec).items() if not hasattr(v, "sample")}
    configs = {"collapsed": fixed | dict(points[0]), "fix": fixed | dict(points[1])}
    grace = getattr(spec.scheduler, "grace_period", None) or spec.max_iterations
    torch.set_num_threads(int(fixed.get("threads", 1)))  # what the trial's worker runs with

    meter = Meter()
    for name in dir(plots):
        fn = getattr(plots, name)
        if callable(fn) and getattr(fn, "__module__", "") == plots.__name__ and not name.startswith("_") \
                and name not in ("save_figure", "save_image"):  # inside the drawings, not beside them
            meter.wrap(plots, name, f"picture: {name}")
    meter.wrap(trainable_module, "_write_state", "checkpoint write")

    shipped = _trainable(spec)
    wrapper_cls = wrapper_class(spec)
    draw_cut = type("DrawCut", (shipped,), {"plan": dataclasses.replace(shipped.plan, draw_at_end=True)})
    classes = {"before": before_class(shipped), "draw_cut": draw_cut, "collapsetune": shipped}
    trials: list[dict] = []
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        with tempfile.TemporaryDirectory() as root:
            # Untimed: the first picture of a process imports matplotlib's fonts (a worker does
            # that once, whichever trial draws first; with reused actors, not once per trial).
            # draw_cut: it draws as it ends, where the shipped trainable would not draw at all.
            run_trial("warm-up", "cut", draw_cut, configs["fix"], 1, root, "warm_up", meter, stop_on_verdict=False)
            verdict_at: int | None = None
            for rep in range(args.repeats):
                order = SIDES[1:] if rep % 2 == 0 else SIDES[:0:-1]
                order = (*order, "plain") if rep % 2 == 0 else ("plain", *order)
                for case in CASES:
                    config = configs["collapsed" if case == "collapsed" else "fix"]
                    reports = {"full": spec.max_iterations, "cut": grace, "collapsed": None}[case]
                    for side in order:
                        n = reports if side != "plain" or case != "collapsed" else verdict_at
                        cls = wrap_function(plain_function(wrapper_cls, n)) if side == "plain" else classes[side]
                        t = run_trial(side, case, cls, config, n, root, f"{side}_{case}_{rep}", meter,
                                      stop_on_verdict=side != "plain")
                        if case == "collapsed" and side != "plain":
                            verdict_at = verdict_at or len(t["report_cpu_s"])
                        trials.append(t)
                        print(f"  {rep} {case:9s} {side:12s} reports {len(t['report_cpu_s']):2d}  "
                              f"{per_report(t):.3f} CPU-s/report", flush=True)
    finally:
        ray.shutdown()

    summary = summarise(trials)
    costs = {side: artifact_costs([t for t in trials if t["side"] == side]) for side in SIDES}
    print(f"\nCPU-s per report (median; {args.repeats} repeats), {spec.name}:")
    print(f"{'side':14s}" + "".join(f"{c:>11s}" for c in (*CASES, "all")) + "   x plain (all)")
    for side in SIDES:
        row = summary[side]
        print(f"{side:14s}" + "".join(f"{row[c]:11.3f}" for c in (*CASES, "all"))
              + f"   {row['ratio_to_plain']['all']:.2f}")
    for side in SIDES[1:]:
        print(f"{side}: " + "; ".join(f"{k} {v['calls_per_trial']:.2f}/trial x {v['median_cpu_s']:.3f} s"
                                      for k, v in sorted(costs[side].items())))
    asked = sum(t["checkpoints_asked"] for t in trials if t["side"] == "collapsetune")
    print(f"reports asking for a checkpoint by checkpoint_interval_s={spec.checkpoint_interval_s:g}: {asked}")
    record = {
        "command": "python benchmarks/report_cost.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "sweep": os.path.relpath(args.sweep, ROOT), "repeats": args.repeats, "grace": grace,
        "verdict_report": verdict_at, "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                                  "torch_threads": torch.get_num_threads()},
        "checkpoint_interval_s": spec.checkpoint_interval_s, "checkpoints_asked_by_time": asked,
        "summary": summary, "artifact_costs": costs, "trials": trials,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    print(f"wrote {out}")
    return record


if __name__ == "__main__":
    main()
