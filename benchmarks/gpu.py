"""GPU sharing per built-in model: trials at 1, 0.5 and 0.25 GPU each (issue 28).

For each built-in model and each share, one real sweep through `run_sweep` (FIFO, no rules,
no MLflow) of the same trials: `--trials-per-gpu` (default 4) x the GPUs Ray sees, each with
`resources: {gpu: share}`, so share 1 runs one trial per GPU at a time and 0.25 four. Per
share it reports:

  steps/s per trial     optimizer steps per second of a trial's report (median over reports
                        after each trial's first, which pays for CUDA start-up)
  max alloc MiB         torch's peak allocation in a trial (median over trials)
  reserved MiB          what torch's allocator held at the trial's end (median over trials)
  sweep steps/s         all trials' optimizer steps / wall of the sweep, and
  x one per GPU         that over the same sweep at share 1 (one trial per GPU)

Run:  python benchmarks/gpu.py                      # every model; benchmarks/results/gpu.json
      python benchmarks/gpu.py --models bitnet_lm --reports 5
      python benchmarks/gpu.py --fake-gpus 1 --quick  # no GPU: the same code on a Ray node that
                                                      # declares GPUs (trials then run on the CPU)

Without CUDA (and without --fake-gpus) it exits at once saying so: there is nothing to measure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import ray
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from collapsetune.launch import run_sweep  # noqa: E402
from collapsetune.spec import load_sweep  # noqa: E402

SHARES = (1.0, 0.5, 0.25)
WRAPPERS = {"bitnet_lm": "MeasuredBitNetLM", "mop_clip": "MeasuredMopClip", "audio_caption": "MeasuredAudioCaption"}
# Each model's shipped sweep size (sweeps/<model>.yaml's config), so a figure is a real trial's.
CONFIGS = {
    "bitnet_lm": {"tokenizer": "bpe", "vocab_size": 512, "d_model": 128, "n_layers": 4, "n_heads": 4,
                  "context": 64, "batch_size": 32, "steps_per_report": 50},
    "mop_clip": {"K": 8, "batch_size": 128, "steps_per_report": 50},
    "audio_caption": {"pooling": "time_preserving", "audio_injection": "every_step", "steps_per_report": 50},
}
QUICK = {  # --quick: seconds per trial, to check the script end to end
    "bitnet_lm": {"tokenizer": "byte", "d_model": 16, "n_layers": 1, "n_heads": 2, "context": 16, "batch_size": 4,
                  "steps_per_report": 2, "gen_tokens": 6, "gen_prompts": 3},
    "mop_clip": {"K": 4, "batch_size": 32, "steps_per_report": 5},
    "audio_caption": {"n_clips": 48, "val_clips": 12, "steps_per_report": 3, "batch_size": 8, "hidden": 32,
                      "embed_dim": 16},
}


def sweep_file(work: Path, model: str, config: dict, share: float, trials: int, reports: int, cpu: float) -> Path:
    keys = {
        "name": f"gpu-{model}-{share:g}",
        "trainable": f"_gpu_measured:{WRAPPERS[model]}",
        "config": {**config, "device": "auto"},
        "search_space": {"seed": {"grid": list(range(trials))}},
        "objective": {"metric": "val/loss", "mode": "min"},
        "max_iterations": reports,
        "num_samples": 1,
        "search": {"algorithm": "random", "seed": 0},
        "scheduler": {"type": "fifo"},
        "collapse": [],
        "resources": {"cpu": cpu, "gpu": share},
        "storage": str(work / "results"),
        "mlflow": {"tracking_uri": None},
    }
    path = work / f"{model}-{share:g}.yaml"
    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in keys.items()))
    return path


def measure(work: Path, model: str, config: dict, share: float, trials: int, reports: int, cpu: float) -> dict:
    spec = load_sweep(sweep_file(work, model, config, share, trials, reports, cpu))
    start = time.perf_counter()
    outcome = run_sweep(spec)
    wall = time.perf_counter() - start
    if outcome.errored:
        raise SystemExit(f"{model} at {share:g} GPU: {outcome.errored} trial(s) failed; see {outcome.path}")
    steps_per_report = config["steps_per_report"]
    rates, alloc, reserved = [], [], []
    for result in Path(outcome.path).glob("*/result.json"):
        rows = [json.loads(line) for line in result.read_text().splitlines()]
        rates += [steps_per_report / r["time_this_iter_s"] for r in rows[1:]]
        alloc.append(rows[-1]["gpu/max_allocated_mib"])
        reserved.append(rows[-1]["gpu/reserved_mib"])
    return {
        "model": model, "share": share, "trials": trials, "reports": reports, "wall_s": wall,
        "steps_per_s_per_trial": statistics.median(rates) if rates else None,
        "max_allocated_mib": statistics.median(alloc), "reserved_mib": statistics.median(reserved),
        "sweep_steps_per_s": trials * reports * steps_per_report / wall,
    }


def table(rows: list[dict]) -> str:
    lines = ["| model | GPU per trial | trials | steps/s per trial | max alloc MiB | reserved MiB | sweep steps/s | x one per GPU |",
             "|---|---|---|---|---|---|---|---|"]
    whole = {r["model"]: r["sweep_steps_per_s"] for r in rows if r["share"] == 1.0}
    for r in rows:
        base = whole.get(r["model"])
        per = "-" if r["steps_per_s_per_trial"] is None else f"{r['steps_per_s_per_trial']:.1f}"
        lines.append(f"| {r['model']} | {r['share']:g} | {r['trials']} | {per} | {r['max_allocated_mib']:.0f} | "
                     f"{r['reserved_mib']:.0f} | {r['sweep_steps_per_s']:.1f} | "
                     f"{'-' if not base else format(r['sweep_steps_per_s'] / base, '.2f')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(WRAPPERS), default=list(WRAPPERS))
    parser.add_argument("--shares", nargs="+", type=float, default=list(SHARES))
    parser.add_argument("--trials-per-gpu", type=int, default=4)
    parser.add_argument("--reports", type=int, default=4, help="reports per trial (the first is not timed)")
    parser.add_argument("--quick", action="store_true", help="tiny models: checks the script, measures nothing")
    parser.add_argument("--fake-gpus", type=int, default=0,
                        help="no GPU needed: a Ray node declaring this many GPUs; trials run on the CPU")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu.json")
    args = parser.parse_args(argv)
    if not args.fake_gpus and not torch.cuda.is_available():
        print(f"benchmarks/gpu.py measures GPUs, and torch {torch.__version__} sees no CUDA device here "
              f"(torch.cuda.is_available() is False, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}). "
              "Run it on a machine with a GPU; --fake-gpus N --quick checks the script without one.", file=sys.stderr)
        return 1
    gpus = args.fake_gpus or torch.cuda.device_count()
    trials = args.trials_per_gpu * gpus
    # One CPU per trial at most, and never more trials than CPUs at the densest share.
    cpus = os.cpu_count() or 1
    cpu = min(1.0, cpus / (gpus / min(args.shares)))
    configs = QUICK if args.quick else CONFIGS
    rows = []
    with tempfile.TemporaryDirectory(prefix="collapsetune-gpu-") as tmp:
        work = Path(tmp)
        shutil.copy(Path(__file__).with_name("_gpu_measured.py"), work)
        if args.fake_gpus:  # run_sweep uses a Ray it finds running; nothing is shipped, the folder is searched
            ray.init(address="local", num_cpus=cpus, num_gpus=gpus, include_dashboard=False, log_to_driver=False)
        try:
            for model in args.models:
                for share in args.shares:
                    rows.append(measure(work, model, configs[model], share, trials, args.reports, cpu))
                    print(table(rows[-1:]).splitlines()[-1], flush=True)
        finally:
            if args.fake_gpus:
                ray.shutdown()
    device = "fake GPUs (CPU)" if args.fake_gpus else torch.cuda.get_device_name(0)
    print(f"\n{device}, {gpus} GPU(s), {trials} trials per sweep, {args.reports} reports each\n\n{table(rows)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": device, "gpus": gpus, "quick": args.quick, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
