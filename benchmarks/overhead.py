"""Orchestration overhead, side by side in one process (issue 6, item 3).

A sweep's wall time over the ideal (the trials' busy time / concurrency) for trials whose
reports take `--seconds` each, and where the rest of the time goes. Runners, all in one
process, the Ray ones on one embedded Ray started once and not counted:

  plain Ray Tune      a function trainable, FIFO, no rules, no MLflow (the issue's anchor:
                      6 trials x 10 x 1 s on 2 slots took 37.7 s against 30 s, 1.26x)
  collapsetune ...    CollapseTrainable (actors reused through reset_config), collapse rules,
                      CollapseStopper, and: MLflow on SQLite or not, checkpoints by time (the
                      shipped default: every 60 s and at the trial's end), every report, or
                      only at the end
  Optuna loop         a plain Optuna in-process loop (2 threads) running the same trials

Every report of the Ray runners carries time.time() from just before and just after its
1-s sleep, so the overhead splits into: start-up (fit() called -> first sleep begins),
between reports (one sleep ends -> the next begins, same trial), between trials (a trial's
last sleep ends -> the next trial's first sleep begins on that worker process) and
teardown (last sleep ends -> fit() returns). The MLflow callback's driver time per result
and per trial is timed inside the collapsetune runner; the rules' cost per report is timed
by driving a CollapseMonitor directly.

Run:  python benchmarks/overhead.py [--trials 6] [--reports 10] [--seconds 1.0]
      python benchmarks/overhead.py --growth     # + collapsetune at 12x10 and 6x20
Prints tables and writes benchmarks/results/overhead.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

SLOTS = 2
SLEEPER = Path(__file__).with_name("_sleeper.py")  # the wrapper every trial runs


def timeline(reports: list[dict], fit_start: float, fit_end: float) -> dict[str, float]:
    """Splits the slots' idle time (slot-seconds not inside a sleep) into where it went.

    start-up: fit() called -> the first SLOTS trials' first sleeps; teardown: the last SLOTS
    trials' last sleeps -> fit() returns; between reports: one sleep ends -> the next
    begins, same trial; between trials: the rest (a trial ends -> the next one starts).
    """
    trials = defaultdict(list)
    for r in reports:
        trials[r["trial_id"]].append(r)
    for trial in trials.values():
        trial.sort(key=lambda r: r["bench/t0"])
    gaps = [b["bench/t0"] - a["bench/t1"] for trial in trials.values() for a, b in pairwise(trial)]
    firsts = sorted(trial[0]["bench/t0"] for trial in trials.values())[:SLOTS]
    lasts = sorted((trial[-1]["bench/t1"] for trial in trials.values()), reverse=True)[:SLOTS]
    busy = sum(r["bench/t1"] - r["bench/t0"] for r in reports)
    idle = SLOTS * (fit_end - fit_start) - busy
    start_up = sum(t - fit_start for t in firsts)
    teardown = sum(fit_end - t for t in lasts)
    between_trials = idle - sum(gaps) - start_up - teardown
    return {
        "idle_slot_s": idle,
        "start_up_slot_s": start_up,
        "between_reports_slot_s": sum(gaps),
        "between_reports_median_s": statistics.median(gaps),
        "between_trials_slot_s": between_trials,
        "between_trials_per_trial_s": between_trials / max(1, len(trials) - SLOTS),
        "teardown_slot_s": teardown,
    }


def plain_ray(trials: int, reports: int, seconds: float, storage: Path) -> tuple[float, dict]:
    from ray import tune

    def trainable(config):
        for i in range(reports):
            t0 = time.time()
            time.sleep(config["seconds"])
            tune.report({"val/loss": 1.0 / (i + 1), "bench/t0": t0, "bench/t1": time.time()})

    start = time.perf_counter()
    wall_start = time.time()
    grid = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"seconds": seconds, "x": tune.grid_search(list(range(trials)))},
        run_config=tune.RunConfig(name="plain", storage_path=str(storage), verbose=0),
    ).fit()
    wall = time.perf_counter() - start
    return wall, timeline(_reports(grid), wall_start, time.time())


def _reports(grid) -> list[dict]:
    return [row for result in grid for row in result.metrics_dataframe.to_dict("records")]


class _Timed:
    """Sums the driver's seconds inside each MlflowTracking hook during one sweep."""

    def __init__(self):
        self.seconds, self.calls = defaultdict(float), defaultdict(int)
        self._patched = []

    def __enter__(self):
        from collapsetune.tracking import MlflowTracking

        for name in ("on_trial_start", "on_trial_result", "on_trial_complete", "on_experiment_end"):
            original = getattr(MlflowTracking, name)
            self._patched.append((name, original))

            @functools.wraps(original)
            def timed(callback, *args, _original=original, _name=name, **kwargs):
                start = time.perf_counter()
                try:
                    return _original(callback, *args, **kwargs)
                finally:
                    self.seconds[_name] += time.perf_counter() - start
                    self.calls[_name] += 1

            setattr(MlflowTracking, name, timed)
        return self

    def __exit__(self, *exc):
        from collapsetune.tracking import MlflowTracking

        for name, original in self._patched:
            setattr(MlflowTracking, name, original)


def collapsetune_sweep(trials: int, reports: int, seconds: float, work: Path, *, mlflow: bool = True,
                       checkpoint_frequency: int | None = None, num_to_keep: int | None = 2,
                       new_store: bool = False) -> tuple[float, dict]:
    """The same trials through collapsetune; the defaults are the shipped ones.

    `new_store`: the sweep is the first into its MLflow store, which then creates its schema
    (~2.5 s of CPU here). By default the store exists already, as it does from a user's
    second sweep on.
    """
    from collapsetune.launch import build_tuner
    from collapsetune.spec import load_sweep

    shutil.copy(SLEEPER, work / "sleeper.py")
    tracking = f"sqlite:///{work / 'mlflow.db'}" if mlflow else "null"
    (work / "sweep.yaml").write_text(
        f"name: overhead\ntrainable: sleeper:Sleeper\nconfig: {{seconds: {seconds}}}\n"
        f"search_space: {{x: {{grid: {list(range(trials))}}}}}\n"
        "objective: {metric: val/loss, mode: min}\n"
        f"max_iterations: {reports}\nnum_samples: 1\nsearch: {{algorithm: random}}\n"
        "scheduler: {type: fifo}\n"
        "collapse: [{metric: collapse/unique_tokens, below: 20, patience: 2, grace: 1}]\n"
        f"storage: {work / 'results'}\nmlflow: {{tracking_uri: {tracking}}}\n"
        f"checkpoint_frequency: {'null' if checkpoint_frequency is None else checkpoint_frequency}\n"
        f"checkpoint_num_to_keep: {'null' if num_to_keep is None else num_to_keep}\n"
    )
    spec = load_sweep(work / "sweep.yaml")
    if mlflow and not new_store:
        from mlflow.tracking import MlflowClient

        MlflowClient(spec.mlflow.tracking_uri).search_experiments()  # creates the schema, untimed
    tuner = build_tuner(spec, f"{work / 'results'}/overhead-{time.time_ns()}", SLOTS)
    with _Timed() as timed:
        start = time.perf_counter()
        wall_start = time.time()
        grid = tuner.fit()
        wall = time.perf_counter() - start
    split = timeline(_reports(grid), wall_start, time.time())
    if mlflow:
        split["mlflow_ms_per_result"] = 1e3 * timed.seconds["on_trial_result"] / timed.calls["on_trial_result"]
        split["mlflow_ms_per_trial"] = 1e3 * (timed.seconds["on_trial_start"] + timed.seconds["on_trial_complete"]) / trials
        split["mlflow_experiment_end_s"] = timed.seconds["on_experiment_end"]
    return wall, split


def optuna_loop(trials: int, reports: int, seconds: float) -> tuple[float, dict]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_int("x", 0, trials)
        for i in range(reports):
            time.sleep(seconds)
            trial.report(1.0 / (i + 1), i)
        return 1.0 / reports

    study = optuna.create_study()
    start = time.perf_counter()
    study.optimize(objective, n_trials=trials, n_jobs=SLOTS)
    return time.perf_counter() - start, {}


def rules_us_per_report(n: int = 20000) -> float:
    """Driving the sweep's rules the way CollapseTrainable does, once per report."""
    from collapsetune.collapse import Below, CollapseMonitor, Rule

    monitor = CollapseMonitor([Rule((Below("collapse/unique_tokens", 20),), patience=2, grace=1)],
                              divergence_metrics=("train/loss", "val/loss"))
    metrics = {"train/loss": 1.0, "val/loss": 1.0, "collapse/unique_tokens": 50.0}
    start = time.perf_counter()
    for _ in range(n):
        monitor.update(metrics)
    return 1e6 * (time.perf_counter() - start) / n


# collapsetune runners: the shipped defaults, then one change at a time.
ABLATIONS = {
    "collapsetune (shipped: MLflow, checkpoint every 60 s and at the end, keep 2)": {},
    "collapsetune, first sweep into a new MLflow store": {"new_store": True},
    "collapsetune, MLflow off": {"mlflow": False},
    "collapsetune, checkpoint every report": {"checkpoint_frequency": 1},
    "collapsetune, checkpoint every report, keep all": {"checkpoint_frequency": 1, "num_to_keep": None},
    "collapsetune, checkpoint at end only": {"checkpoint_frequency": 0},
    "collapsetune, MLflow off, checkpoint at end only": {"mlflow": False, "checkpoint_frequency": 0},
}


def run_all(args, work: Path) -> dict[str, tuple[float, dict]]:
    """Every runner on one shape; the Ray ones share one Ray instance, started once."""
    t, r, s = args.trials, args.reports, args.seconds
    runs = {"plain Ray Tune (function trainable)": plain_ray(t, r, s, work / "plain")}
    for i, (name, changes) in enumerate(ABLATIONS.items()):
        folder = work / f"collapsetune-{i}"
        folder.mkdir()
        runs[name] = collapsetune_sweep(t, r, s, folder, **changes)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--reports", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--growth", action="store_true", help="also collapsetune (as shipped) at 2x trials and 2x reports")
    args = parser.parse_args()
    import ray

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        start = time.perf_counter()
        ray.init(address="local", num_cpus=SLOTS, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - start
        shapes = [(args.trials, args.reports)]
        if args.growth:
            shapes += [(2 * args.trials, args.reports), (args.trials, 2 * args.reports)]
        runs = {}
        for trials, reports in shapes:
            shape = argparse.Namespace(trials=trials, reports=reports, seconds=args.seconds)
            if (trials, reports) == shapes[0]:
                runs.update({(n, trials, reports): v for n, v in run_all(shape, work).items()})
            else:
                folder = work / f"growth-{trials}-{reports}"
                folder.mkdir()
                shipped = next(iter(ABLATIONS))
                runs[shipped, trials, reports] = collapsetune_sweep(trials, reports, args.seconds, folder)
        ray.shutdown()
    runs["plain Optuna loop (in-process, 2 threads)", args.trials, args.reports] = optuna_loop(
        args.trials, args.reports, args.seconds)

    print(f"\n{args.seconds} s reports on {SLOTS} slots; Ray start-up {ray_start:.1f} s (not counted)")
    print("Idle slot-seconds (2 x wall - time asleep), split by where they fall:\n")
    print("| runner | trials x reports | wall s | wall / ideal | idle slot-s | start-up | between reports "
          "(median gap s) | between trials | teardown |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (name, trials, reports), (wall, split) in runs.items():
        ideal = trials * reports * args.seconds / SLOTS
        rows.append({"runner": name, "trials": trials, "reports": reports, "wall_s": wall, "ideal_s": ideal,
                     "ratio": wall / ideal, "overhead_s_per_trial": (wall - ideal) * SLOTS / trials, **split})
        if not split:  # the Optuna loop: no timeline
            print(f"| {name} | {trials} x {reports} | {wall:.1f} | {wall / ideal:.2f} | | | | | |")
            continue
        print(f"| {name} | {trials} x {reports} | {wall:.1f} | {wall / ideal:.2f} | {split['idle_slot_s']:.1f} "
              f"| {split['start_up_slot_s']:.1f} | {split['between_reports_slot_s']:.1f} "
              f"({split['between_reports_median_s']:.3f}) | {split['between_trials_slot_s']:.1f} "
              f"| {split['teardown_slot_s']:.1f} |")
    rules_us = rules_us_per_report()
    print(f"collapse rules: {rules_us:.1f} us per report")
    for row in rows:
        if "mlflow_ms_per_result" in row:
            print(f"MLflow ({row['trials']}x{row['reports']}): {row['mlflow_ms_per_result']:.1f} ms per result, "
                  f"{row['mlflow_ms_per_trial']:.0f} ms per trial, {row['mlflow_experiment_end_s']:.2f} s at the end "
                  "(driver time)")
    out = Path(__file__).parent / "results" / "overhead.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({
        "args": vars(args), "ray_start_s": ray_start, "rules_us_per_report": rules_us, "rows": rows,
        "machine": f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores",
        "load_average_at_end": os.getloadavg(), "date": time.strftime("%Y-%m-%d"),
        "command": "python benchmarks/overhead.py" + (" --growth" if args.growth else ""),
    }, indent=2))


if __name__ == "__main__":
    main()
