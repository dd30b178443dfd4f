"""Real-run confirmations of issue 24's sweep keys on MoP-CLIP: each one a real sweep of
sweeps/mop_clip.yaml on the embedded Ray, beside the same sweep without the key, same seeds.

  forecast     `collapse_forecast: {min_trials: 8, max_false_stop: 0.1}` against the sweep as
               shipped, 60 trials each (section 13 replayed it; here it runs on real trials).
               min_trials and max_false_stop are looser than the defaults (20, 0.05) because
               in 60 trials ASHA cuts most trials before any verdict, and the defaults would
               leave the forecast too few judged trials to act on.
  warm_start   `search.warm_start:` the forecast pair's shipped sweep's results folder, 20
               trials, against the same 20-trial sweep started cold (search seed + 1000 on
               both, so neither repeats the earlier sweep's proposals).
  breaker      `stop_sweep_when: {collapsed_share_above: 0.8, after_trials: 8}` on a space that
               is all collapse (both regularizer weights fixed at 0: 27 of 27 such rows of the
               MoP-CLIP table end collapsed), 30 trials, against the same space without it.

Per sweep: trials, reports, CPU-seconds (`time/cpu_s`), how trials ended, the best healthy
val/accuracy and whether Tune's pick collapsed; for the forecast, how many trials it stopped
and on which report, and for the trials that ran to the rules' verdict how often its last
forecast (P(collapse) > 0.5) agreed; for the breaker, whether it ended the sweep and after how
many trials.

Run:  python benchmarks/confirm.py --seeds 0 1 2 3 4     (~6 min a seed on 2 shared cores)
Writes benchmarks/results/confirm_mop_clip.json after every sweep (`--resume` keeps the pairs it
has for the same sweep file content) and prints a markdown table (docs/benchmarks.md, section 20).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _sweep_key import sweep_key  # noqa: E402 - benchmarks/ is not a package
from compare import Trial, machine, run_variant, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "sweeps" / "mop_clip.yaml"
ALL_COLLAPSE = ["search_space.diversity_loss_weight={choice: [0.0]}", "search_space.entropy_loss_weight={choice: [0.0]}",
                "search.points_to_evaluate=[]"]  # the shipped points hold the seed's fix, outside this space
# (pair, side, overrides, the seed offset); `{warm}` is the forecast pair's shipped folder.
SIDES = [
    ("forecast", "without", ["num_samples=60"], 0),
    ("forecast", "with", ["num_samples=60", "collapse_forecast={min_trials: 8, max_false_stop: 0.1}"], 0),
    ("warm_start", "without", ["num_samples=20"], 1000),
    ("warm_start", "with", ["num_samples=20", "search.warm_start={warm}"], 1000),
    ("breaker", "without", ["num_samples=30", *ALL_COLLAPSE], 0),
    ("breaker", "with", ["num_samples=30", *ALL_COLLAPSE,
                         "stop_sweep_when={collapsed_share_above: 0.8, after_trials: 8}"], 0),
]


def measure(trials: list[Trial], best: Trial | None, folder: Path) -> dict:
    """One sweep's row."""
    # A trial the breaker stopped before its first report has none: "no report".
    ended = [t.reports[-1].get("collapse.status", "inconclusive") if t.reports else "no report" for t in trials]
    healthy = [t.reports[-1]["val/accuracy"] for t, e in zip(trials, ended) if e == "healthy"]
    forecast_stops = [len(t.reports) for t in trials
                      if t.reports and str(t.reports[-1].get("collapse.reason", "")).startswith("forecast")]
    # Trials the rules judged (not the forecast, not ASHA): did the last forecast they carried agree?
    agreed = judged = 0
    for t, e in zip(trials, ended):
        said = [r["collapse.forecast"] for r in t.reports if _number(r.get("collapse.forecast"))]
        if said and e in ("collapsed", "healthy") and not str(t.reports[-1].get("collapse.reason", "")).startswith("forecast"):
            judged += 1
            agreed += (said[-1] > 0.5) == (e == "collapsed")
    stopped = folder / "sweep_stopped.json"
    return {
        "trials": len(trials), "reports": sum(len(t.reports) for t in trials),
        "cpu_s": sum(t.cpu_s for t in trials),
        "ended": {s: ended.count(s) for s in sorted(set(ended))},
        "best_healthy": max(healthy) if healthy else None,
        "picked_collapsed": None if best is None or not best.reports else
        best.reports[-1].get("collapse.status") == "collapsed",
        "forecast_stopped_at": sorted(forecast_stops),
        "forecast_judged_by_rules": judged, "forecast_agreed": agreed,
        "sweep_stopped": json.loads(stopped.read_text()) if stopped.exists() else None,
    }


def _number(value) -> bool:
    return isinstance(value, (int, float)) and value == value  # not NaN


def table(rows: list[dict]) -> str:
    head = ("| pair | seed | side | trials | reports | CPU-s | ended | best healthy val/accuracy | picked collapsed "
            "| forecast stops (report) | forecast agreed with the rules | sweep stopped |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        best = "none" if r["best_healthy"] is None else f"{r['best_healthy']:.4f}"
        ended = ", ".join(f"{k} {v}" for k, v in r["ended"].items())
        stops = f"{len(r['forecast_stopped_at'])} ({', '.join(map(str, r['forecast_stopped_at']))})" \
            if r["forecast_stopped_at"] else "0"
        agree = f"{r['forecast_agreed']} of {r['forecast_judged_by_rules']}" if r["forecast_judged_by_rules"] else "-"
        stopped = "-" if r["sweep_stopped"] is None else str(r["sweep_stopped"].get("reason", "yes"))
        lines.append(f"| {r['pair']} | {r['seed']} | {r['side']} | {r['trials']} | {r['reports']} | {r['cpu_s']:.0f} "
                     f"| {ended} | {best} | {r['picked_collapsed']} | {stops} | {agree} | {stopped} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the embedded Ray (= trial slots)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "confirm_mop_clip.json")
    parser.add_argument("--resume", action="store_true", help="keep the sweeps --out has for the same sweep file content")
    args = parser.parse_args()
    import ray

    key = sweep_key(SWEEP)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    rows = []
    if args.resume and args.out.exists():
        rows = [r for r in json.loads(args.out.read_text())["rows"] if r.get("sweep_key") == key]
    started = time.perf_counter()

    def write() -> None:
        doc = {"command": "python benchmarks/confirm.py --seeds " + " ".join(map(str, args.seeds)),
               "sweep": str(SWEEP.relative_to(ROOT)), "sweep_key": key,
               "machine": machine(),
               "load_average": os.getloadavg(), "date": time.strftime("%Y-%m-%d"),
               "wall_s": time.perf_counter() - started, "rows": rows}
        write_json(args.out, doc)

    with tempfile.TemporaryDirectory() as storage:
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        try:
            for seed in args.seeds:
                warm = None
                for pair, side, overrides, offset in SIDES:
                    if any(r["seed"] == seed and r["pair"] == pair and r["side"] == side for r in rows):
                        continue
                    if "{warm}" in " ".join(overrides):
                        if warm is None:  # the shipped 60-trial sweep of this seed, run again here when kept
                            spec, _, _, _ = run_variant(SWEEP, "collapsetune", seed, Path(storage) / "warm",
                                                        ["num_samples=60"])
                            warm = Path(storage) / "warm" / f"{spec.name}-collapsetune-{seed}"
                        overrides = [o.replace("{warm}", str(warm)) for o in overrides]
                    where = Path(storage) / f"{pair}-{side}"
                    spec, wall, trials, best = run_variant(SWEEP, "collapsetune", seed + offset, where, overrides)
                    folder = where / f"{spec.name}-collapsetune-{seed + offset}"
                    if pair == "forecast" and side == "without":
                        warm = folder
                    rows.append({"pair": pair, "side": side, "seed": seed, "search_seed": seed + offset, "commit": commit,
                                 "overrides": overrides, "sweep_key": key, "wall_s": wall,
                                 **measure(trials, best, folder)})
                    write()
                    print(table(rows), flush=True)
        finally:
            ray.shutdown()
    write()
    print(table(rows))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
