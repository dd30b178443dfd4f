"""Rescue instead of kill: collapse-aware PBT against collapse-aware ASHA (issue 11, item 4).

For a benchmark sweep file and each seed, two sweeps run one after another on one embedded
Ray, with the same rules, random search seed and model seed:

  asha-kill    the file as written: CollapseASHA, collapsed trials stopped
  pbt-rescue   `scheduler: {type: pbt, mutable: [...], rescue_toward: {...}}`: collapsed
               trials copy a healthy trial's checkpoint and perturbed knobs instead of
               stopping (MoP-CLIP's anti-collapse knobs moved their fixing way, since 2026-12-06)

At the same budget: asha-kill runs first, and pbt-rescue's population is asha-kill's
trial-iterations / max_iterations (rounded), so both train about as many reports. Each side
reports its trial-iterations and CPU-seconds (`time/cpu_s`: set-up, training, checkpoints).

Measured per seed: trials that end healthy, the best objective among them, and the
CPU-seconds spent on trials that end collapsed or diverged (thrown away).

Run:  python benchmarks/rescue.py --seeds 0 1 2     (all three sweeps; MoP-CLIP and the LM took
      about 15 min on 2 cores; the captioner's reports cost ~20 CPU-s each, ~3x theirs)
      python benchmarks/rescue.py --sweeps mop_clip --seeds 0   (one quick look)
Writes benchmarks/results/rescue.json and prints a markdown table (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _sweep_key import sweep_key  # noqa: E402 - benchmarks/ is not a package
from compare import Trial, machine, run_variant, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# The knobs PBT may perturb in a running trial: the search space minus what shapes the model.
MUTABLE = {
    "mop_clip": ["lr", "tau_end", "diversity_loss_weight", "entropy_loss_weight"],
    "bitnet_lm": ["lr", "weight_decay", "label_smoothing", "maxsup_start", "maxsup_end", "confidence_penalty",
                  "vocab_bonus", "output_l2"],
    # The scene set, where the captioner's collapse lasts; pooling, audio injection and
    # attention shape the model (a copy brings the donor's, with its checkpoint).
    "audio_caption_scenes": ["lr", "label_smoothing", "scheduled_sampling", "ss_schedule", "specaugment"],
}
# What a rescue moves the fixing way (`rescue_toward`), as sweeps/mop_clip_pbt.yaml: seeds/001's
# fixes for MoP-CLIP. The LM's seed (seeds/003) names no direction that holds across runs.
RESCUE_TOWARD = {
    "mop_clip": {"diversity_loss_weight": "up", "entropy_loss_weight": "up", "tau_end": "up"},
    "bitnet_lm": {},
    # seeds/002's training fixes, each a choice whose list runs from off to on.
    "audio_caption_scenes": {"label_smoothing": "up", "scheduled_sampling": "up", "specaugment": "up"},
}
STOPPING = ("collapsed", "diverged")


def _flow(mapping: dict[str, str]) -> str:
    """A mapping as YAML flow text, for a --set override."""
    return "{" + ", ".join(f"{k}: {v}" for k, v in mapping.items()) + "}"


def measure(side: str, seed: int, trials: list[Trial], mode: str, metric: str, wall: float) -> dict:
    """One sweep's row: how its trials ended and what they cost."""
    ended = [t.reports[-1].get("collapse.status", "inconclusive") for t in trials]
    healthy = [t.reports[-1][metric] for t, status in zip(trials, ended) if status == "healthy"]
    best = (max if mode == "max" else min)(healthy) if healthy else None
    thrown = sum(t.cpu_s for t, status in zip(trials, ended) if status in STOPPING)
    # A copy right after a collapsed or diverged report is a rescue; other copies are
    # ordinary PBT exploits of trials in the bottom quantile.
    rescued = sum(1 for t in trials for before, r in zip(t.reports, t.reports[1:])
                  if isinstance(r.get("pbt.donor"), str) and before.get("collapse.status") in STOPPING)
    return {
        "side": side, "seed": seed, "trials": len(trials), "wall_s": wall,
        "iterations": sum(len(t.reports) for t in trials), "cpu_s": sum(t.cpu_s for t in trials),
        "ended": {s: ended.count(s) for s in sorted(set(ended))}, "healthy": len(healthy),
        "best_healthy": best, "cpu_s_ending_collapsed": thrown, "rescues": rescued,
        "exploits": sum(1 for t in trials for r in t.reports if isinstance(r.get("pbt.donor"), str)),
        "not_healthy": [f"{status} at report {t.reports[-1]['training_iteration']}: {t.reports[-1].get('collapse.reason')}"
                        for t, status in zip(trials, ended) if status != "healthy"],
    }


def kept_rows(out: Path, keys: dict[str, str], interval: int) -> list[dict]:
    """The rows of `out` to keep: for the sweeps of this run, the seeds with both sides measured
    with the same sweep content and interval (the rest are run again); other sweeps' rows as
    they are. Nothing when `out` does not exist yet."""
    if not out.exists():
        return []
    old = json.loads(out.read_text())
    if old.get("interval", 2) != interval:
        raise SystemExit(f"--resume: {out} was measured with --interval {old.get('interval', 2)}, not {interval}")
    others = [r for r in old.get("rows", []) if r.get("sweep") not in keys]  # sweeps not run now: kept as they are
    rows = [r for r in old.get("rows", []) if r.get("sweep") in keys and r.get("sweep_key") == keys[r["sweep"]]]
    sides: dict[tuple, set] = {}
    for r in rows:
        sides.setdefault((r["sweep"], r["seed"]), set()).add(r["side"])
    return others + [r for r in rows if sides[(r["sweep"], r["seed"])] == {"asha-kill", "pbt-rescue"}]


def table(rows: list[dict], metric: str) -> str:
    head = ("| sweep | seed | side | trials | trial-iterations | CPU-s | wall s | ended healthy | "
            f"best healthy {metric} | CPU-s in trials ending collapsed | rescues (all copies) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        best = "none" if r["best_healthy"] is None else f"{r['best_healthy']:.4f}"
        copies = f"{r['rescues']} ({r['exploits']})" if r["side"] == "pbt-rescue" else "-"
        lines.append(f"| {r['sweep']} | {r['seed']} | {r['side']} | {r['trials']} | {r['iterations']} | "
                     f"{r['cpu_s']:.0f} | {r['wall_s']:.0f} | {r['healthy']} | {best} | "
                     f"{r['cpu_s_ending_collapsed']:.0f} | {copies} |")
    return "\n".join(lines)


def verdict(rows: list[dict], mode: str) -> dict:
    """The issue's goals per sweep: better best-healthy on >= 2 of 3 seeds, less CPU thrown away."""
    better, less = 0, 0
    seeds = sorted({r["seed"] for r in rows})
    for seed in seeds:
        kill = next(r for r in rows if r["seed"] == seed and r["side"] == "asha-kill")
        pbt = next(r for r in rows if r["seed"] == seed and r["side"] == "pbt-rescue")
        if pbt["best_healthy"] is not None and (kill["best_healthy"] is None or (
                pbt["best_healthy"] > kill["best_healthy"] if mode == "max" else pbt["best_healthy"] < kill["best_healthy"])):
            better += 1
        less += pbt["cpu_s_ending_collapsed"] < kill["cpu_s_ending_collapsed"]
    total = {side: sum(r["cpu_s"] for r in rows if r["side"] == side) for side in ("asha-kill", "pbt-rescue")}
    return {"seeds": len(seeds), "pbt_better_best_healthy": better, "pbt_less_cpu_ending_collapsed": less,
            "cpu_pbt_over_asha": total["pbt-rescue"] / total["asha-kill"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweeps", nargs="+", default=list(MUTABLE), choices=list(MUTABLE))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the embedded Ray (= trial slots)")
    parser.add_argument("--interval", type=int, default=2, help="PBT's perturbation_interval (reports)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "rescue.json")
    parser.add_argument("--resume", action="store_true",
                        help="keep the seeds --out already has for the same sweep files (by content) and interval")
    args = parser.parse_args()
    import ray

    from collapsetune.spec import load_sweep

    keys = {name: sweep_key(ROOT / "benchmarks" / "sweeps" / f"{name}.yaml") for name in args.sweeps}
    rows = kept_rows(args.out, keys, args.interval) if args.resume else []
    started = time.perf_counter()
    verdicts = {}

    def write() -> None:  # after every seed, so a stopped run keeps what it measured
        summary = {
            "command": " ".join(["python benchmarks/rescue.py", "--sweeps", *args.sweeps, "--seeds",
                                 *map(str, args.seeds), *(["--interval", str(args.interval)] if args.interval != 2 else [])]),
            "mutable": {n: MUTABLE[n] for n in args.sweeps},
            "rescue_toward": {n: RESCUE_TOWARD[n] for n in args.sweeps},
            "machine": machine(),
            "date": time.strftime("%Y-%m-%d"), "total_wall_s": time.perf_counter() - started,
            "interval": args.interval, "verdicts": verdicts, "rows": rows,
        }
        write_json(args.out, summary)

    with tempfile.TemporaryDirectory() as storage:
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        try:
            for name in args.sweeps:
                sweep = ROOT / "benchmarks" / "sweeps" / f"{name}.yaml"
                spec = load_sweep(sweep)
                metric, mode = spec.objective.metric, spec.objective.mode
                for seed in args.seeds:
                    if any(r["sweep"] == name and r["seed"] == seed for r in rows):
                        print(f"{name} seed {seed}: kept from {args.out}", flush=True)
                        continue
                    _, wall, trials, _ = run_variant(sweep, "collapsetune", seed, Path(storage) / "asha", [])
                    kill = measure("asha-kill", seed, trials, mode, metric, wall)
                    population = max(2, round(kill["iterations"] / spec.max_iterations))
                    pbt = [f"num_samples={population}",
                           f"scheduler={{type: pbt, mutable: [{', '.join(MUTABLE[name])}], "
                           f"perturbation_interval: {args.interval}, rescue_toward: {_flow(RESCUE_TOWARD[name])}}}"]
                    _, wall, trials, _ = run_variant(sweep, "collapsetune", seed, Path(storage) / "pbt", pbt)
                    rows += [{"sweep": name, "sweep_key": keys[name], **kill},
                             {"sweep": name, "sweep_key": keys[name], **measure("pbt-rescue", seed, trials, mode,
                                                                                 metric, wall)}]
                    verdicts[name] = verdict([r for r in rows if r["sweep"] == name], mode)
                    write()
                    print(table(rows, metric), flush=True)
                verdicts[name] = verdict([r for r in rows if r["sweep"] == name], mode)
        finally:
            ray.shutdown()
    write()
    for name in args.sweeps:
        print(f"\n{name}\n" + table([r for r in rows if r["sweep"] == name], "objective"))
        print(json.dumps(verdicts[name]))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
