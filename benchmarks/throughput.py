"""Driver throughput at cluster scale, side by side in one process (issue 13).

Many trials at once, each reporting many times a second, so that the driver (Tune's loop,
and collapsetune's callbacks and MLflow writer on it) is what limits the sweep. Runners,
all on one embedded Ray started once and not counted:

  plain Ray Tune              a function trainable driving benchmarks/_sleeper.py's Sleeper,
                              FIFO, no MLflow
  collapsetune, MLflow off    CollapseTrainable driving its SampledSleeper (the same, with a
                              text sample per report) + collapse rule (on a constant metric, so
                              it never fires), CollapseStopper, FIFO, random search,
                              `mlflow.tracking_uri: null`
  collapsetune, MLflow        the same as shipped: MLflow on SQLite (the store exists before
                              the sweep; its schema creation is not timed)

Every trial asks for a small fraction of a CPU, so 8, 32 or 128 trials run at once on this
machine's 2 cores. A report is a `1 / rate` s sleep; every report carries `time.time()` at
its end (`bench/t1`), its worker's RSS and whether torch is loaded there. Measured per cell
(trials x rate):

  results/s       all results / wall of fit(); the ideal is trials x rate
  wall / ideal    wall of fit() over reports / rate (every trial running from the start)
  steady res/s    results per second while every trial was running (from the last trial's
                  first report to the first trial's last report): the rate without the
                  workers' start-up and the teardown; empty when no such window exists
  worker MiB      a trial's worker's RSS and of that what no file backs (its largest
                  report; median over trials), and how many workers had torch loaded
  driver CPU s    time.process_time() of this process over fit() (all its threads), and of
                  that the main thread's (Tune's loop, the callbacks) and MLflow's writer
                  thread's
  MLflow          per log_batch of reports: wall ms (median, p95) and reports per batch;
                  how long Tune's loop waited on the writer (flush before each experiment
                  snapshot and at trial end, and a full queue)
  counted         after each MLflow runner: every trial's run has exactly one `val/loss`
                  value for each step 1..reports (no result lost, none doubled)

Run:  python benchmarks/throughput.py            # the grid; writes benchmarks/results/throughput.json
                                                 # and docs/plots/throughput.png
      python benchmarks/throughput.py --quick    # 8 trials x 10 reports/s x 20 reports, prints only
      python benchmarks/throughput.py --trials 8 32 --rates 1 20   # a part of the grid
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

CPUS = 2
IDEAL_S = 20.0  # each cell's ideal wall: reports = rate x IDEAL_S ...
MAX_RESULTS = 8000  # ... unless trials x reports would pass this; then fewer reports
RUNNERS = ("plain Ray Tune", "collapsetune, MLflow off", "collapsetune, MLflow")
COUNT_METRIC = "val/loss"
SLEEPER = Path(__file__).with_name("_sleeper.py")  # the wrapper every trial of every runner runs


def reports_for(trials: int, rate: float, ideal_s: float = IDEAL_S, max_results: int = MAX_RESULTS) -> int:
    """Reports per trial: `ideal_s` worth at `rate`, capped so one sweep makes at most
    `max_results` results (at least 5 reports)."""
    return max(5, min(round(rate * ideal_s), max_results // trials))


def steady_rate(reports: list[tuple[str, float]]) -> tuple[float | None, float]:
    """Results per second while every trial was running, from (trial id, report time) pairs:
    from the last trial's first report to the first trial's last report. None when some
    trial ended before the last one began (no such window, or under 1 s)."""
    by_trial: dict[str, list[float]] = defaultdict(list)
    for trial, t in reports:
        by_trial[trial].append(t)
    start = max(min(ts) for ts in by_trial.values())
    end = min(max(ts) for ts in by_trial.values())
    if end - start < 1.0:
        return None, max(0.0, end - start)
    inside = sum(1 for _, t in reports if start < t <= end)
    return inside / (end - start), end - start


class Patched:
    """Times methods from outside while the block runs: (wall s, calling thread's CPU s,
    extra) per call of each, by name. The library's code is left as it is."""

    def __init__(self, targets: dict[str, tuple[type, str]], extra=None):
        self.targets, self.extra = targets, extra or {}
        self.calls: dict[str, list[tuple[float, float, object]]] = defaultdict(list)
        self._saved: list[tuple[type, str, object]] = []

    def __enter__(self):
        for label, (owner, name) in self.targets.items():
            original = owner.__dict__[name]
            self._saved.append((owner, name, original))

            @functools.wraps(original)
            def timed(*args, _original=original, _label=label, **kwargs):
                wall, cpu = time.perf_counter(), time.thread_time()
                try:
                    return _original(*args, **kwargs)
                finally:
                    what = self.extra[_label](*args, **kwargs) if _label in self.extra else None
                    self.calls[_label].append((time.perf_counter() - wall, time.thread_time() - cpu, what))

            setattr(owner, name, timed)
        return self

    def __exit__(self, *exc):
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)

    def total(self, label: str, index: int = 0) -> float:
        return sum(call[index] for call in self.calls[label])


class MemoryLow:
    """The lowest MemAvailable seen while the block runs, sampled every 0.5 s."""

    def __enter__(self):
        self.low_gib, self._stop = _available_gib(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.5):
            self.low_gib = min(self.low_gib, _available_gib())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def _fit(tuner, trials: int, reports: int, rate: float) -> tuple[dict, object]:
    """fit() with the driver's clocks around it; the row's common columns and the grid."""
    with MemoryLow() as memory:
        cpu, main_cpu, start = time.process_time(), time.thread_time(), time.perf_counter()
        grid = tuner.fit()
        wall = time.perf_counter() - start
        cpu, main_cpu = time.process_time() - cpu, time.thread_time() - main_cpu
    pairs, rss, anon, torch = [], [], [], 0
    for result in grid:
        frame = result.metrics_dataframe
        if frame is not None and "bench/t1" in frame:
            pairs += [(result.metrics["trial_id"], t) for t in frame["bench/t1"]]
            rss.append(frame["bench/rss_mib"].max())
            anon.append(frame["bench/anon_mib"].max())
            torch += bool(frame["bench/torch"].max())
    steady, window = steady_rate(pairs)
    ideal = reports / rate
    errors = sum(1 for result in grid if result.error)
    return {
        "trials": trials, "rate": rate, "reports": reports, "asked_results_per_s": trials * rate,
        "results": len(pairs), "expected_results": trials * reports, "errors": errors,
        "wall_s": wall, "ideal_s": ideal, "wall_over_ideal": wall / ideal, "results_per_s": len(pairs) / wall,
        "steady_results_per_s": steady, "steady_window_s": window,
        "driver_cpu_s": cpu, "main_thread_cpu_s": main_cpu, "driver_cpu_per_result_ms": 1e3 * cpu / max(1, len(pairs)),
        "mem_available_low_gib": memory.low_gib,
        "worker_rss_mib_median": statistics.median(rss) if rss else None,
        "worker_anon_mib_median": statistics.median(anon) if anon else None, "workers_with_torch": torch,
    }, grid


def plain_ray(trials: int, reports: int, rate: float, cpu: float, work: Path) -> dict:
    from ray import tune

    work.mkdir(parents=True)
    shutil.copy(SLEEPER, work / "sleeper.py")

    def trainable(config):
        if config["folder"] not in sys.path:  # the wrapper beside the run, found as collapsetune's trials find it
            sys.path.insert(0, config["folder"])
        from sleeper import Sleeper

        wrapper = Sleeper(config)
        for _ in range(config["reports"]):
            tune.report(wrapper.step())

    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": cpu}),
        param_space={"seconds": 1.0 / rate, "reports": reports, "folder": str(work),
                     "x": tune.grid_search(list(range(trials)))},
        tune_config=tune.TuneConfig(max_concurrent_trials=trials),
        run_config=tune.RunConfig(name=f"plain-{time.time_ns()}", storage_path=str(work), verbose=0),
    )
    row, _ = _fit(tuner, trials, reports, rate)
    return row


def write_sweep(work: Path, name: str, trials: int, reports: int, rate: float, cpu: float, uri: str,
                more: str = "") -> Path:
    """`work`/sweep.yaml and the SampledSleeper beside it: the sweep of the collapsetune
    runners (`more`: further lines of YAML). Returns the sweep file."""
    work.mkdir(parents=True)
    shutil.copy(SLEEPER, work / "sleeper.py")
    (work / "sweep.yaml").write_text(
        f"name: {name}\ntrainable: sleeper:SampledSleeper\nconfig: {{seconds: {1.0 / rate}}}\n"
        "search_space: {x: {uniform: [0, 1]}}\n"
        "objective: {metric: val/loss, mode: min}\n"
        f"max_iterations: {reports}\nnum_samples: {trials}\nsearch: {{algorithm: random, seed: 0}}\n"
        "scheduler: {type: fifo}\n"
        "collapse: [{metric: collapse/unique_tokens, below: 20, patience: 2, grace: 1}]\n"
        f"resources: {{cpu: {cpu}}}\n"
        f"storage: {work / 'results'}\nmlflow: {{tracking_uri: {uri}}}\n" + more
    )
    return work / "sweep.yaml"


def collapsetune_sweep(trials: int, reports: int, rate: float, cpu: float, work: Path, *, mlflow: bool) -> dict:
    """The trials through collapsetune, built as `collapsetune run` builds them."""
    from collapsetune import tracking
    from collapsetune.launch import _quiet_tune, _write_launch_files, build_tuner
    from collapsetune.spec import load_sweep
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{work / 'mlflow.db'}" if mlflow else "null"
    name = f"throughput-{trials}-{rate:g}"
    spec = load_sweep(write_sweep(work, name, trials, reports, rate, cpu, uri))
    if mlflow:
        MlflowClient(spec.mlflow.tracking_uri).search_experiments()  # creates the schema, untimed
    # As `collapsetune run` launches it: its launch files (the summary and atlas written to
    # the parent run at the end read them) and Ray Tune's own tables and TensorBoard logger off.
    launch_id = uuid.uuid4().hex
    _write_launch_files(spec, f"{work / 'results'}/{name}", launch_id)
    tuner = build_tuner(spec, f"{work / 'results'}/{name}", trials, launch_id, progress=True)
    writer_cpu: list[float] = []
    loop = tracking._Writer._loop

    def timed_loop(writer):  # the writer thread's own CPU, read as it ends
        try:
            loop(writer)
        finally:
            writer_cpu.append(time.thread_time())

    targets = {
        "log_batch": (MlflowClient, "log_batch"), "log_text": (MlflowClient, "log_text"),
        "create_run": (MlflowClient, "create_run"), "set_terminated": (MlflowClient, "set_terminated"),
        "log_artifacts": (MlflowClient, "log_artifacts"),
        "wait_flush": (tracking._Writer, "flush"), "wait_queue": (tracking._Writer, "log"),
        "on_trial_result": (tracking.MlflowTracking, "on_trial_result"),
        "on_experiment_end": (tracking.MlflowTracking, "on_experiment_end"),
    }
    # log_batch: how many reports (metric values of COUNT_METRIC) the call wrote; 0 for params and tags.
    count = {"log_batch": lambda self, run_id, metrics=(), **kw: sum(m.key == COUNT_METRIC for m in metrics or ())}
    tracking._Writer._loop = timed_loop
    try:
        with Patched(targets, count) as patched, _quiet_tune():
            row, grid = _fit(tuner, trials, reports, rate)
    finally:
        tracking._Writer._loop = loop
    if not mlflow:
        return row
    batches = [(wall, cpu, n) for wall, cpu, n in patched.calls["log_batch"] if n]
    walls = sorted(1e3 * wall for wall, _, _ in batches)
    row.update({
        "writer_cpu_s": sum(writer_cpu),
        "report_batches": len(batches),
        "reports_per_batch": sum(n for _, _, n in batches) / max(1, len(batches)),
        "log_batch_ms_median": statistics.median(walls) if walls else None,
        "log_batch_ms_p95": walls[int(0.95 * (len(walls) - 1))] if walls else None,
        "log_batch_ms_max": walls[-1] if walls else None,
        "log_batch_s": sum(wall for wall, _, _ in batches),
        "log_batch_cpu_s": sum(cpu for _, cpu, _ in batches),
        "writer_other_s": {k: patched.total(k) for k in ("log_text", "create_run", "set_terminated", "log_artifacts")},
        "log_text_calls": len(patched.calls["log_text"]),
        "loop_waited_flush_s": patched.total("wait_flush"), "flushes": len(patched.calls["wait_flush"]),
        "loop_waited_queue_s": patched.total("wait_queue"),
        "on_experiment_end_s": patched.total("on_experiment_end"),
        "on_trial_result_ms": 1e3 * patched.total("on_trial_result") / max(1, len(patched.calls["on_trial_result"])),
    })
    row.update(count_logged(spec.mlflow.tracking_uri, name, trials, reports))
    return row


def count_logged(uri: str, experiment: str, trials: int, reports: int) -> dict:
    """Whether every trial's MLflow run holds exactly one COUNT_METRIC value per step 1..reports."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], "tags.`ray.trial_id` != ''", max_results=5000)
    complete, values = 0, 0
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, COUNT_METRIC)]
        values += len(steps)
        complete += sorted(steps) == list(range(1, reports + 1))
    return {"mlflow_runs": len(runs), "mlflow_runs_complete": complete, "mlflow_values": values,
            "mlflow_values_expected": trials * reports, "no_result_lost": complete == trials == len(runs)
            and values == trials * reports}


def run_cell(trials: int, rate: float, reports: int, cpu: float, work: Path, runners=RUNNERS) -> list[dict]:
    rows = []
    for name in runners:
        folder = work / f"{name.replace(' ', '_').replace(',', '')}-{trials}-{rate:g}"
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {trials} trials x {reports} reports at {rate:g}/s",
              file=sys.stderr, flush=True)
        if name == "plain Ray Tune":
            row = plain_ray(trials, reports, rate, cpu, folder)
        else:
            row = collapsetune_sweep(trials, reports, rate, cpu, folder, mlflow=name.endswith("MLflow"))
        rows.append({"runner": name, **row})
        print(f"    wall {row['wall_s']:.1f} s, {row['results_per_s']:.0f} results/s, "
              f"driver CPU {row['driver_cpu_s']:.1f} s", file=sys.stderr, flush=True)
    plain = next((r for r in rows if r["runner"] == "plain Ray Tune"), None)
    for row in rows:
        if plain is not None:
            row["vs_plain"] = row["results_per_s"] / plain["results_per_s"]
            if row["steady_results_per_s"] and plain["steady_results_per_s"]:
                row["steady_vs_plain"] = row["steady_results_per_s"] / plain["steady_results_per_s"]
    return rows


def _f(value, form: str = ".0f") -> str:
    return "" if value is None else format(value, form)


def table(rows: list[dict]) -> str:
    lines = [
        "| trials x rate (reports) | runner | results/s (asked) | x plain | wall / ideal | steady results/s (x plain) "
        "| worker RSS, not file-backed MiB (workers with torch) | driver CPU s (main, MLflow thread) "
        "| log_batch ms median / p95 (reports per batch) | loop waited on MLflow s | counted in MLflow |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        steady = _f(r["steady_results_per_s"]) + (f" ({r['steady_vs_plain']:.2f})" if "steady_vs_plain" in r else "")
        cpu = f"{r['driver_cpu_s']:.1f} ({r['main_thread_cpu_s']:.1f}" + (
            f", {r['writer_cpu_s']:.1f})" if "writer_cpu_s" in r else ")")
        mlflow = waited = counted = ""
        if "report_batches" in r:
            mlflow = f"{_f(r['log_batch_ms_median'], '.1f')} / {_f(r['log_batch_ms_p95'], '.1f')} ({r['reports_per_batch']:.1f})"
            waited = f"{r['loop_waited_flush_s'] + r['loop_waited_queue_s']:.1f}"
            counted = (f"{r['mlflow_values']} / {r['mlflow_values_expected']}, "
                       f"{r['mlflow_runs_complete']} of {r['trials']} runs whole")
        lost = "" if r["results"] == r["expected_results"] else f" ({r['results']} of {r['expected_results']} results)"
        lost += f" ({r['errors']} trials failed)" if r["errors"] else ""
        lines.append(
            f"| {r['trials']} x {r['rate']:g}/s ({r['reports']}) | {r['runner']}{lost} | {r['results_per_s']:.0f} "
            f"({r['asked_results_per_s']:g}) | {_f(r.get('vs_plain'), '.2f')} | {r['wall_over_ideal']:.2f} | {steady} "
            f"| {_f(r.get('worker_rss_mib_median'))}, {_f(r.get('worker_anon_mib_median'))} "
            f"({r.get('workers_with_torch', '')}) "
            f"| {cpu} | {mlflow} | {waited} | {counted} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(14, 4.8), sharey=False)
    styles = {"plain Ray Tune": ("tab:gray", "o"), "collapsetune, MLflow off": ("tab:blue", "s"),
              "collapsetune, MLflow": ("tab:red", "^")}
    dashes = {1: ":", 10: "--", 20: "-"}
    for ax, key, title in ((axes[0], "results_per_s", "results / wall of fit()"),
                           (axes[1], "steady_results_per_s", "results/s while every trial ran")):
        for runner, (color, marker) in styles.items():
            for rate in sorted({r["rate"] for r in rows}):
                points = sorted((r["trials"], r[key]) for r in rows
                                if r["runner"] == runner and r["rate"] == rate and r[key])
                if points:
                    ax.plot(*zip(*points), color=color, marker=marker, linestyle=dashes.get(rate, "-"),
                            label=f"{runner}, {rate:g}/s")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(sorted({r["trials"] for r in rows}), [str(t) for t in sorted({r["trials"] for r in rows})])
        ax.set_xlabel("trials at once")
        ax.set_ylabel("results per second")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), fontsize=7, loc="center right")
    fig.suptitle(f"Driver throughput on {CPUS} cores (a report every 1/rate s per trial)")
    fig.tight_layout(rect=(0, 0, 0.82, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--rates", type=float, nargs="+", default=[1, 10, 20], help="reports per second per trial")
    parser.add_argument("--ideal-s", type=float, default=IDEAL_S, help="each cell's ideal wall (reports = rate x this)")
    parser.add_argument("--max-results", type=int, default=MAX_RESULTS, help="fewer reports where a sweep would make more")
    parser.add_argument("--cpu", type=float, default=0.01, help="CPUs per trial (Ray's accounting only)")
    parser.add_argument("--runners", nargs="+", default=list(RUNNERS), choices=RUNNERS)
    parser.add_argument("--quick", action="store_true", help="8 trials x 10/s x 20 reports; prints, writes nothing")
    parser.add_argument("--append", action="store_true", help="add the rows to those already in --out")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "throughput.json")
    parser.add_argument("--plot", type=Path, default=Path(__file__).parent.parent / "docs" / "plots" / "throughput.png")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.rates, args.ideal_s = [8], [10.0], 2.0
    import ray

    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    before = json.loads(args.out.read_text()) if args.append and args.out.exists() else {}
    rows: list[dict] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        ray.init(address="local", num_cpus=CPUS, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - start
        for trials in args.trials:
            for rate in args.rates:
                reports = reports_for(trials, rate, args.ideal_s, args.max_results)
                rows += run_cell(trials, rate, reports, args.cpu, Path(scratch), args.runners)
                if not args.quick:  # what is done so far survives a run cut short
                    _write(args, before, rows, uptime, ray_start, started)
        ray.shutdown()
    print(f"\nRay start-up {ray_start:.1f} s (not counted); {CPUS} CPUs, {args.cpu} CPU per trial; "
          f"uptime before: {uptime}; after: {os.getloadavg()}\n")
    print(table(rows))
    if not args.quick:
        _write(args, before, rows, uptime, ray_start, started)
        plot(before.get("rows", []) + rows, args.plot)
        print(f"\nwrote {args.out} and {args.plot}")


def _write(args, before: dict, rows: list[dict], uptime: str, ray_start: float, started: float) -> None:
    """The JSON: this invocation's rows after those of `before` (--append), one entry per invocation."""
    command = "python benchmarks/throughput.py" + "".join(
        f" --{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in vars(args).items()
        if k in ("trials", "rates", "ideal_s", "max_results", "cpu", "runners") and v != {
            "trials": [8, 32, 128], "rates": [1, 10, 20], "ideal_s": IDEAL_S, "max_results": MAX_RESULTS,
            "cpu": 0.01, "runners": list(RUNNERS)}[k]) + (" --append" if args.append else "")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = [*before.get("runs", []), {
        "command": command, "date": time.strftime("%Y-%m-%d %H:%M"), "run_s": time.perf_counter() - started,
        "uptime_before": uptime, "load_average_at_end": os.getloadavg(), "ray_start_s": ray_start,
        "cells": sorted({(r["trials"], r["rate"]) for r in rows}),
    }]
    args.out.write_text(json.dumps({
        "commands": [run["command"] for run in runs], "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores, "
                   f"{_total_gib():.1f} GiB", "cpu_per_trial": args.cpu, "runs": runs,
        "rows": before.get("rows", []) + rows,
    }, indent=2))


def _total_gib() -> float:
    return int(Path("/proc/meminfo").read_text().split()[1]) / 2**20


if __name__ == "__main__":
    main()
