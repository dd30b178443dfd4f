"""Constraint-aware search vs the penalised objective alone, side by side (issue 11, item 2).

For each seed, two Optuna (TPE) sweeps of MoP-CLIP run one after the other on one embedded
Ray, with the same search space, budget, seed and collapse rules:

  penalty      the sampler learns collapse only through the objective (1e9 / -1e9 once a
               trial collapses), as before
  constraints  also `search.constraints: true`: each finished trial's last collapse margin
               is its Optuna constraint, so TPE models feasibility apart from the objective

Measured per sweep, in the order Optuna proposed the trials (Tune's trial index):
  collapsing share   of the trials proposed after the first third, the share that ends
                     collapsed (or diverged): how often the searcher goes back to where
                     collapse lives once it has seen some
  best healthy       the best objective among trials that end healthy
  cpu in collapsed   CPU-seconds spent in trials that end collapsed

TPE proposes at random for its first 10 trials (Optuna's n_startup_trials); the default
budget of 30 makes the first third exactly those. MLflow is off (its cost is in overhead.py).

Run:  python benchmarks/search.py --seeds 0 1 2
Writes benchmarks/results/search_mop_clip.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare import fit  # noqa: E402 - benchmarks/ is not a package

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "benchmarks" / "sweeps" / "mop_clip.yaml"
VARIANTS = {
    "penalty": ["search.constraints=false"],
    "constraints": ["search.constraints=true"],
}
ENDED_BAD = ("collapsed", "diverged")


def run_variant(variant: str, seed: int, storage: Path, samples: int) -> dict:
    """Runs one sweep; returns its measurements."""
    from collapsetune.spec import load_sweep

    overrides = [f"search.seed={seed}", f"config.seed={seed}", f"storage={storage}", f"num_samples={samples}",
                 "search.algorithm=optuna", "scheduler={type: fifo}", *VARIANTS[variant]]
    spec = load_sweep(SWEEP, overrides)
    wall, grid = fit(spec, str(storage / f"{spec.name}-{variant}-{seed}"), f"{variant} seed {seed}")
    trials = []
    for result in grid:
        reports = result.metrics_dataframe.to_dict("records")
        last = reports[-1]
        trials.append({
            # Tune numbers trials as they are proposed: <trainable>_<trial id>_<number>_<params>_<date>
            "index": int(re.search(rf"{last['trial_id']}_(\d+)", Path(result.path).name).group(1)),
            "status": last["collapse.status"],
            "metric": float(last[spec.objective.metric]),
            "cpu_s": sum(r["time/cpu_s"] for r in reports),
            "reports": len(reports),
        })
    trials.sort(key=lambda t: t["index"])
    later = trials[len(trials) // 3:]
    healthy = [t["metric"] for t in trials if t["status"] == "healthy"]
    pick = max if spec.objective.mode == "max" else min
    return {
        "variant": variant, "seed": seed, "wall_s": wall, "trials": len(trials),
        "collapsing_share_after_first_third": sum(t["status"] in ENDED_BAD for t in later) / len(later),
        "collapsing_share_all": sum(t["status"] in ENDED_BAD for t in trials) / len(trials),
        "healthy": len(healthy),
        "best_healthy": pick(healthy) if healthy else None,
        "cpu_s": sum(t["cpu_s"] for t in trials),
        "cpu_s_in_collapsed": sum(t["cpu_s"] for t in trials if t["status"] in ENDED_BAD),
        "statuses_in_order": [t["status"][0] for t in trials],  # h/c/d/i, proposal order
    }


def table(rows: list[dict]) -> str:
    lines = ["| search | seed | trials | collapsing after first third | collapsing, all | healthy "
             "| best healthy val/accuracy | CPU s (in collapsed) | wall s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        best = f"{r['best_healthy']:.4f}" if r["best_healthy"] is not None else "-"
        lines.append(f"| {r['variant']} | {r['seed']} | {r['trials']} | {r['collapsing_share_after_first_third']:.2f} "
                     f"| {r['collapsing_share_all']:.2f} | {r['healthy']} | {best} "
                     f"| {r['cpu_s']:.0f} ({r['cpu_s_in_collapsed']:.0f}) | {r['wall_s']:.0f} |")
    return "\n".join(lines)


def ratios(rows: list[dict]) -> dict[str, str]:
    by = {(r["variant"], r["seed"]): r for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    share = [by["constraints", s]["collapsing_share_after_first_third"]
             / max(by["penalty", s]["collapsing_share_after_first_third"], 1e-9) for s in seeds]
    better = sum((by["constraints", s]["best_healthy"] or 0) > (by["penalty", s]["best_healthy"] or 0) for s in seeds)
    return {
        "collapsing share after first third, constraints / penalty (per seed)": ", ".join(f"{x:.2f}" for x in share),
        "mean of that ratio": f"{statistics.mean(share):.2f}",
        "seeds where constraints reach a better best healthy objective": f"{better} of {len(seeds)}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--samples", type=int, default=30, help="trials per sweep")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the embedded Ray (= trial slots)")
    args = parser.parse_args()
    import ray

    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as storage:
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        try:
            for i, seed in enumerate(args.seeds):
                order = list(VARIANTS)[i % 2:] + list(VARIANTS)[:i % 2]  # neither always runs first
                for variant in order:
                    rows.append(run_variant(variant, seed, Path(storage), args.samples))
                    print(table(rows), flush=True)
        finally:
            ray.shutdown()
    rows.sort(key=lambda r: (r["seed"], r["variant"]))
    summary = {
        "sweep": str(SWEEP.relative_to(ROOT)), "seeds": args.seeds, "trials_per_sweep": args.samples,
        "command": " ".join(["python benchmarks/search.py --seeds", *map(str, args.seeds), "--samples", str(args.samples)]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"), "total_wall_s": time.perf_counter() - started,
        "ratios": ratios(rows), "rows": rows,
    }
    out = ROOT / "benchmarks" / "results" / "search_mop_clip.json"
    out.write_text(json.dumps(summary, indent=2))
    print("\n" + table(rows))
    for key, value in summary["ratios"].items():
        print(f"{key}: {value}")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
