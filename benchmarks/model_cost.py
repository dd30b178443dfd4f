"""Model cost, measured side by side in one process (issue 6, item 4):

  1  A BitLinear LM's training step (forward, backward, grad clip, AdamW) over the same LM
     with nn.Linear: same seed, same shape, one fixed batch of random tokens. Two shapes:
     the main sweep's (sweeps/bitnet_lm.yaml) and a larger one. The variants alternate in
     rounds (bit float, then float bit, ...), so load from other jobs hits both alike.
  2  The collapse metrics' share of one report (`step()`) of each shipped trainable, run with
     its sweep's `config:` and one of its `points_to_evaluate`. Each collapse-metric function
     the trainable calls is wrapped with a timer, in the namespace it is called from. Timed
     separately: the LM's greedy continuations, which exist only for the collapse metrics,
     and the audio captioner's decoding of the val clips, which CIDEr-D uses too.

Run:  python benchmarks/model_cost.py [--device cpu|cuda] [--rounds 15] [--reports 4]
Prints two tables and writes benchmarks/results/model_cost.json. Torch uses 1 thread, as
the sweeps do. The first round of part 1 and the first report of part 2 are warm-up and
are not counted.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from collapsetune.models import BitNetConfig, BitNetLM
from collapsetune.registry import resolve_trainable
from collapsetune.spec import load_sweep, spec_to_dict

ROOT = Path(__file__).resolve().parent.parent
VOCAB, BATCH = 1024, 32  # sweeps/bitnet_lm.yaml
SHAPES = {
    "sweep: d_model 64, 2 layers, context 64": {"d_model": 64, "n_layers": 2, "n_heads": 4, "context": 64},
    "larger: d_model 256, 4 layers, context 128": {"d_model": 256, "n_layers": 4, "n_heads": 4, "context": 128},
}
ROUND_SECONDS = 0.5  # a round times enough steps to fill this, so short steps are not all timer noise

# Which of the sweep's points_to_evaluate each trainable runs, and why that one.
POINTS = {
    "bitnet_lm": (2, "lr 3e-3, no regularizer (healthy)"),
    "mop_clip": (1, "the seed's fix: tau_end 0.3, diversity and entropy losses"),
    "audio_caption": (1, "the architecture fixes, greedy decoding"),
}
# What to time, by label, named as the trainable calls it: from its module (`pm.assign_entropy`)
# or from the trainable object (`self.evaluate`). `evaluate` holds the other labels' calls.
TIMED = {
    "bitnet_lm": {
        "evaluate": ["self.evaluate"],
        "metrics": ["metrics.argmax_unique", "metrics.unique_tokens", "metrics.distinct_n",
                    "metrics.unigram_entropy", "metrics.repetition"],
        "needed": ["generate"],  # greedy continuations: only the collapse metrics read them
    },
    "mop_clip": {
        "evaluate": ["self.evaluate"],
        "metrics": ["pm.hard_assignments", "pm.assign_max_share", "pm.assign_entropy",
                    "pm.dead_subprompts", "pm.subprompt_cos_max", "pm.subprompt_cos_mean"],
    },
    "audio_caption": {
        "evaluate": ["self.evaluate"],
        "forward": ["self.model.forward"],  # teacher-forced passes: training and val loss
        "metrics": ["cm.unique_captions", "cm.top_caption_share", "cm.distinct_ngrams", "cm.vocab_used"],
        # Encoding and decoding the val clips; shared: BLEU-4 and CIDEr-D score the same captions.
        "needed": ["self.model.init_state", "decode_sequences"],
        "quality": ["cm.bleu4", "cm.cider_d"],
    },
}
# Calls not timed inside a call of the given label: forward() encodes through init_state too.
UNLESS = {"self.model.init_state": "forward"}


class Stopwatch:
    """Seconds spent inside wrapped callables, summed per label, and calls per name.

    A call made inside another call of the same label is not timed again, so a metric that
    calls another metric counts once; calls of other labels inside it are timed for theirs.
    With ``unless``, a call made inside a call of that label is not timed at all.

    Example:
        >>> watch = Stopwatch()
        >>> timed_sum = watch.wrap(sum, "metrics", "sum")
        >>> timed_sum([1, 2]), watch.calls["sum"], watch.seconds["metrics"] > 0
        (3, 1, True)
    """

    def __init__(self, sync: Callable[[], None] = lambda: None) -> None:
        self.sync = sync  # torch.cuda.synchronize on a GPU, so queued kernels land in the right label
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._depth: dict[str, int] = defaultdict(int)

    def wrap(self, fn: Callable, label: str, name: str, unless: str | None = None) -> Callable:
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            self.calls[name] += 1
            if self._depth[label] or (unless and self._depth[unless]):
                return fn(*args, **kwargs)
            self._depth[label] += 1
            self.sync()
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.sync()
                self.seconds[label] += time.perf_counter() - start
                self._depth[label] -= 1
        return timed


def spread(values: list[float]) -> dict[str, float]:
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": median, "q1": q1, "q3": q3}


def lm_step(shape: dict, linear: str, device: torch.device) -> Callable[[], None]:
    """One training step of the trainable's kind on a fixed batch, for a fresh LM."""
    torch.manual_seed(0)  # same initial weights for both variants
    model = BitNetLM(BitNetConfig(vocab_size=VOCAB, linear=linear, **shape)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1, betas=(0.9, 0.95))
    tokens = torch.randint(VOCAB, (BATCH, shape["context"] + 1), generator=torch.Generator().manual_seed(0))
    x, y = tokens[:, :-1].to(device), tokens[:, 1:].to(device)  # (B, T), (B, T)

    def step() -> None:
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return step


def compare_linear(shape: dict, rounds: int, device: torch.device, sync: Callable[[], None]) -> dict:
    steps = {linear: lm_step(shape, linear, device) for linear in ("bit", "float")}

    def seconds_per_step(step: Callable[[], None], reps: int) -> float:
        sync()
        start = time.perf_counter()
        for _ in range(reps):
            step()
        sync()
        return (time.perf_counter() - start) / reps

    reps = max(1, math.ceil(ROUND_SECONDS / seconds_per_step(steps["bit"], 1)))
    seconds_per_step(steps["float"], reps)  # warm-up round, not counted
    seconds_per_step(steps["bit"], reps)
    per_round: dict[str, list[float]] = {"bit": [], "float": []}
    for r in range(rounds):
        for linear in ("bit", "float") if r % 2 == 0 else ("float", "bit"):
            per_round[linear].append(seconds_per_step(steps[linear], reps))
    ratios = [b / f for b, f in zip(per_round["bit"], per_round["float"])]
    return {"steps_per_round": reps, "rounds": rounds,
            "bit_ms": statistics.median(per_round["bit"]) * 1e3,
            "float_ms": statistics.median(per_round["float"]) * 1e3,
            "ratio": spread(ratios)}


def sweep_config(name: str, device: str) -> dict:
    sweep = spec_to_dict(load_sweep(ROOT / "sweeps" / f"{name}.yaml"))
    config = {**sweep["config"], **sweep["search"]["points_to_evaluate"][POINTS[name][0]],
              "max_iterations": sweep["max_iterations"]}
    if name == "bitnet_lm":
        config["device"] = device  # mop_clip and audio_caption train on the CPU only
    return config


def metric_cost(name: str, reports: int, device: str, sync: Callable[[], None]) -> dict:
    """Run the real trainable for 1 + ``reports`` reports with its metric functions timed."""
    trainable = resolve_trainable(name)
    module = sys.modules[trainable.__module__]
    model = trainable(sweep_config(name, device))
    watch = Stopwatch(sync)
    originals = []
    for label, names in TIMED[name].items():
        for dotted in names:
            *path, attr = dotted.split(".")
            root, path = (model, path[1:]) if path[:1] == ["self"] else (module, path)
            owner = functools.reduce(getattr, path, root)
            originals.append((owner, attr, getattr(owner, attr)))
            setattr(owner, attr, watch.wrap(getattr(owner, attr), label, dotted, UNLESS.get(dotted)))
    rows = []
    try:
        model.step()  # warm-up report, not counted
        for _ in range(reports):
            watch.seconds.clear()
            sync()
            start = time.perf_counter()
            model.step()
            sync()
            rows.append({"step_s": time.perf_counter() - start, **watch.seconds})
    finally:
        for owner, attr, fn in originals:
            setattr(owner, attr, fn)
    missed = [n for names in TIMED[name].values() for n in names if not watch.calls[n]]
    if missed:
        raise RuntimeError(f"{trainable.__module__} no longer calls {missed}; update TIMED")
    step = statistics.median(r["step_s"] for r in rows)
    out = {"point": POINTS[name][1], "reports": reports, "step_s": step,
           "per_report": rows, "calls_per_report": {n: c // (reports + 1) for n, c in watch.calls.items()}}
    for label in TIMED[name]:
        out[f"{label}_s"] = statistics.median(r.get(label, 0.0) for r in rows)
        out[f"{label}_fraction"] = statistics.median(r.get(label, 0.0) / r["step_s"] for r in rows)
    if "needed" in TIMED[name]:
        out["metrics_and_needed_fraction"] = statistics.median(
            (r["metrics"] + r["needed"]) / r["step_s"] for r in rows)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds per shape in part 1")
    parser.add_argument("--reports", type=int, default=4, help="timed reports per trainable in part 2")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    load_before, started = os.getloadavg()[0], time.perf_counter()

    linear = {shape: compare_linear(dims, args.rounds, torch.device(args.device), sync)
              for shape, dims in SHAPES.items()}
    print(f"\nBitLinear vs nn.Linear, one training step, batch {BATCH}, vocab {VOCAB}, {args.device}, 1 thread")
    print(f"{'shape':<44} {'bit ms':>8} {'float ms':>9} {'bit / float':>12} {'IQR':>12}")
    for shape, r in linear.items():
        q = r["ratio"]
        print(f"{shape:<44} {r['bit_ms']:>8.1f} {r['float_ms']:>9.1f} {q['median']:>12.2f} "
              f"{q['q1']:>5.2f}-{q['q3']:.2f}")

    cost = {name: metric_cost(name, args.reports, args.device, sync) for name in POINTS}
    print(f"\nCollapse metrics per report (step()), median of {args.reports} reports")
    print(f"{'trainable':<14} {'step s':>7} {'evaluate s':>11} {'metrics s':>10} {'share':>7} "
          f"{'gen/decode s':>13} {'share with it':>14}")
    for name, r in cost.items():
        needed = (f"{r['needed_s']:>13.3f} {r['metrics_and_needed_fraction']:>14.3%}" if "needed_s" in r
                  else f"{'-':>13} {'-':>14}")
        print(f"{name:<14} {r['step_s']:>7.2f} {r['evaluate_s']:>11.3f} {r['metrics_s']:>10.4f} "
              f"{r['metrics_fraction']:>7.3%} {needed}")

    out = ROOT / "benchmarks" / "results" / "model_cost.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({
        "command": " ".join(["python", "benchmarks/model_cost.py", *sys.argv[1:]]),
        "args": vars(args), "linear": linear, "metric_cost": cost,
        "machine": f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores",
        "torch": torch.__version__, "device": args.device,
        "load_avg_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "wall_s": time.perf_counter() - started, "date": time.strftime("%Y-%m-%d"),
    }, indent=2))
    print(f"\nwrote {out.relative_to(ROOT)} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
