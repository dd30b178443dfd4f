"""Probe: when do MoP-CLIP sub-prompts collapse on the default digits features?

Trains the ``mop_clip`` wrapper directly (no Ray), one process, one thread, and prints per
setting the final same-class sub-prompt cosine (per-class max, averaged; and mean), the
largest assignment share, dead sub-prompts, val accuracy, and the first report at which the
sweep's rules' conditions hold (cos_max > 0.9, share > 0.9). Results in docs/mop_clip.md.

    python benchmarks/probe_mop_clip.py                 # full suite (600 steps, lr 5e-4), ~1 min
    python benchmarks/probe_mop_clip.py --suite lr      # lr x steps, collapse vs fix vs strong fix
    python benchmarks/probe_mop_clip.py --suite sweep   # the sweep's two points, 3 seeds, 1200 steps
    python benchmarks/probe_mop_clip.py --suite quick   # collapse vs fix only
    python benchmarks/probe_mop_clip.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

from collapsetune.data.features import load_features
from trainables.mop_clip import MopClip

COLLAPSE = {"tau_end": 0.05, "diversity_loss_weight": 0.0, "entropy_loss_weight": 0.0}  # seeds/001 before
FIX = {"tau_end": 0.3, "diversity_loss_weight": 0.1, "entropy_loss_weight": 0.01}  # seeds/001 fix
PCA = {"feature_cone": 0.0, "feature_gap": 0.0}  # plain PCA digits, text = class mean (the probe)
BASE = {"max_iterations": 12, "steps_per_report": 50, "threads": 1}


def suite(name: str) -> list[tuple[str, dict[str, Any]]]:
    runs: list[tuple[str, dict[str, Any]]] = []
    if name == "sweep":  # sweeps/mop_clip.yaml's points_to_evaluate, its 12 x 100 steps
        long = {"max_iterations": 12, "steps_per_report": 100, "lr": 1e-2}
        for seed in (0, 1, 2):
            runs += [(f"sweep collapse s{seed}", {**long, **COLLAPSE, "seed": seed}),
                     (f"sweep fix s{seed}", {**long, **FIX, "seed": seed})]
        return runs
    if name == "lr":
        for per_report in (50, 100):
            for lr in (2e-3, 5e-3, 1e-2):
                for label, cfg in (("collapse", COLLAPSE), ("fix", FIX),
                                   ("fix div 1", {**FIX, "diversity_loss_weight": 1.0})):
                    runs.append((f"{12 * per_report} steps lr {lr:g} {label}",
                                 {**cfg, "lr": lr, "steps_per_report": per_report}))
        return runs
    for seed in (0, 1, 2):
        runs += [(f"clip collapse s{seed}", {**COLLAPSE, "seed": seed}),
                 (f"clip fix s{seed}", {**FIX, "seed": seed})]
    if name == "quick":
        return runs
    for seed in (0, 1):
        runs += [(f"pca collapse s{seed}", {**PCA, **COLLAPSE, "seed": seed}),
                 (f"pca fix s{seed}", {**PCA, **FIX, "seed": seed})]
    runs += [
        ("clip tau_end 0.3 only", {**COLLAPSE, "tau_end": 0.3}),
        ("clip diversity 0.1 only", {**COLLAPSE, "diversity_loss_weight": 0.1}),
        ("clip entropy 0.01 only", {**COLLAPSE, "entropy_loss_weight": 0.01}),
        ("clip tau_end 0.7 div 1 ent 0.15", {"tau_end": 0.7, "diversity_loss_weight": 1.0,
                                              "entropy_loss_weight": 0.15}),  # seed repo's later default
        ("clip collapse sim_scale 1", {**COLLAPSE, "sim_scale": 1.0}),
        ("clip fix sim_scale 1", {**FIX, "sim_scale": 1.0}),
        ("clip collapse sim_scale 10", {**COLLAPSE, "sim_scale": 10.0}),
        ("clip collapse K 4", {**COLLAPSE, "K": 4}),
        ("clip fix K 4", {**FIX, "K": 4}),
        ("clip collapse K 32", {**COLLAPSE, "K": 32}),
        ("clip fix K 32", {**FIX, "K": 32}),
        ("clip collapse init 0.04", {**COLLAPSE, "init_std": 0.04}),
        ("clip fix init 0.04", {**FIX, "init_std": 0.04}),
        ("clip collapse lr 5e-3", {**COLLAPSE, "lr": 5e-3}),
        ("clip fix lr 5e-3", {**FIX, "lr": 5e-3}),
        ("clip collapse lr 1e-4", {**COLLAPSE, "lr": 1e-4}),
        ("clip collapse hard", {**COLLAPSE, "assignment": "hard"}),
        ("clip collapse logsumexp", {**COLLAPSE, "class_pool": "logsumexp"}),
        ("clip collapse cosine tau", {**COLLAPSE, "tau_schedule": "cosine"}),
    ]
    return runs


def geometry(options: dict[str, float]) -> dict[str, float]:
    """Cosine statistics of a feature set: the numbers that make it CLIP-like or not."""
    fs = load_features("digits", **{k.removeprefix("feature_"): v for k, v in options.items()})
    x = torch.nn.functional.normalize(torch.from_numpy(fs.features), dim=-1)
    t = torch.nn.functional.normalize(torch.from_numpy(fs.class_embeddings), dim=-1)
    y = torch.from_numpy(fs.labels)
    xx = x @ x.T
    same = y[:, None] == y[None, :]
    off = ~torch.eye(len(y), dtype=torch.bool)
    xt = x @ t.T  # (N, C)
    own = xt[torch.arange(len(y)), y]
    other = xt[torch.nn.functional.one_hot(y, t.shape[0]) == 0]
    return {"img_img_all": xx[off].mean().item(), "img_img_same": xx[same & off].mean().item(),
            "img_text_own": own.mean().item(), "img_text_other": other.mean().item(),
            "text_text": (t @ t.T)[~torch.eye(t.shape[0], dtype=torch.bool)].mean().item()}


def run(config: dict[str, Any]) -> dict[str, Any]:
    model = MopClip({**BASE, **config})
    history = []
    start = time.perf_counter()
    for _ in range(model.cfg.max_iterations):
        history.append(model.step())
    seconds = time.perf_counter() - start

    def first(metric: str, above: float) -> int | None:
        return next((i + 1 for i, h in enumerate(history) if h[metric] > above), None)

    last = history[-1]
    return {
        "cos_max": last["collapse/subprompt_cos_max"], "cos_mean": last["collapse/subprompt_cos_mean"],
        "share": last["collapse/assign_max_share"], "entropy": last["collapse/assign_entropy"],
        "dead": last["collapse/dead_subprompts"], "acc": last["val/accuracy"],
        "first_cos>0.9": first("collapse/subprompt_cos_max", 0.9),
        "first_share>0.9": first("collapse/assign_max_share", 0.9),
        "share_by_report": [round(h["collapse/assign_max_share"], 3) for h in history],
        "cos_max_by_report": [round(h["collapse/subprompt_cos_max"], 3) for h in history],
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--suite", choices=("quick", "full", "lr", "sweep"), default="full")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out: dict[str, Any] = {"geometry": {"clip (default)": geometry({}), "pca": geometry(PCA)}, "runs": {}}
    for name, stats in out["geometry"].items():
        print(f"geometry {name:<15} " + "  ".join(f"{k}={v:.3f}" for k, v in stats.items()))
    print(f"{'setting':<34} {'cos_max':>7} {'cos_mean':>8} {'share':>6} {'dead':>5} {'acc':>5} "
          f"{'cos>.9@':>7} {'share>.9@':>9} {'s':>5}")
    for name, config in suite(args.suite):
        r = run(config)
        out["runs"][name] = {"config": config, **r}
        print(f"{name:<34} {r['cos_max']:7.3f} {r['cos_mean']:8.3f} {r['share']:6.3f} {r['dead']:5.2f} "
              f"{r['acc']:5.3f} {str(r['first_cos>0.9']):>7} {str(r['first_share>0.9']):>9} {r['seconds']:5.1f}",
              flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=float)
    for name in ("clip collapse s0", "clip fix s0", "sweep collapse s0", "sweep fix s0"):
        if name in out["runs"]:
            r = out["runs"][name]
            print(f"{name}: share by report {r['share_by_report']}\n{' ' * len(name)}  cos_max {r['cos_max_by_report']}")


if __name__ == "__main__":
    main()
