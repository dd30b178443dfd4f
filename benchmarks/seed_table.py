"""seeds/003's "Comparison of All Approaches" table, filled for our BitNet LM (issue 6, item 5).

Runs sweeps/seed_table.yaml through the library (seven fixed settings, 600 steps each, no
collapse rule, FIFO), or reads a results folder of that sweep, and writes:

  - the table (markdown, printed): distinct tokens at steps 150, 300 and 600, both as
    `collapse/unique_tokens` (distinct tokens in 16 greedy continuations of 32 tokens) and
    `collapse/argmax_unique` (distinct teacher-forced argmax predictions on the val batch,
    what seeds/003 counted), "recovered?", and val/loss at steps 150 and 600;
  - benchmarks/results/seed_table.json: every report of every trial, command, machine, date,
    wall time;
  - docs/plots/seed_table.png: both token counts against step, one line per setting.

"recovered?" uses the main sweep's collapse threshold (15 generated unique tokens,
sweeps/bitnet_lm.yaml): "yes" = below 15 at some report after the first and >= 15 at the
last; "no" = below 15 at the last report; "never collapsed" = never below 15 after report 1
(report 1 is skipped because every model starts out predicting a handful of tokens).

    python benchmarks/seed_table.py                       # sweep into results/, ~5 min on 2 cores
    python benchmarks/seed_table.py --set max_concurrent=1  # one trial at a time (shared cores)
    python benchmarks/seed_table.py --from results/seed-table-20261122-160000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ROOT / "sweeps" / "seed_table.yaml"
THRESHOLD = 15  # the main sweep's rule: collapse/unique_tokens below 15
STEPS = (150, 300, 600)  # end of the transient collapse, end of the main sweep's grace, the end
STANDARD_LR = 3e-3  # BitNetLMConfig.lr, the LM's default
METRICS = ("collapse/unique_tokens", "collapse/argmax_unique", "val/loss", "train/loss",
           "collapse/distinct_2", "time_this_iter_s")
# Regularizer keys as the table names them; MaxSup is named by its ramp.
REGULARIZERS = {"label_smoothing": "label smoothing", "confidence_penalty": "confidence penalty",
                "vocab_bonus": "vocabulary bonus", "output_l2": "output L2"}


def setting_name(config: dict) -> str:
    """'standard LR' (the default 3e-3) or 'reduced LR', plus each regularizer that is on."""
    parts = ["standard LR" if config["lr"] >= STANDARD_LR else "reduced LR"]
    parts += [f"{label} {config[key]:g}" for key, label in REGULARIZERS.items() if config.get(key)]
    if config.get("maxsup_start") or config.get("maxsup_end"):
        parts.append(f"MaxSup {config['maxsup_start']:g}->{config['maxsup_end']:g}")
    return " + ".join(parts)


def recovery(unique: Sequence[float], threshold: float = THRESHOLD) -> str:
    """'yes', 'no' or 'never collapsed' for one trial's per-report unique-token counts."""
    if unique[-1] < threshold:
        return "no"
    return "yes" if any(u < threshold for u in unique[1:]) else "never collapsed"


def value_at(steps: Sequence[int], values: Sequence[float], step: int) -> float:
    """The value reported at `step`; NaN when the trial has no report there."""
    return values[steps.index(step)] if step in steps else math.nan


def make_table(trials: Sequence[dict]) -> str:
    """Markdown table from trials {"setting", "lr", "steps", "reports": {metric: [values]}}."""
    def cells(trial: dict, metric: str, fmt: str) -> list[str]:
        values = (value_at(trial["steps"], trial["reports"][metric], s) for s in STEPS)
        return ["–" if math.isnan(v) else format(v, fmt) for v in values]

    at = " | ".join(f"@ {s}" for s in STEPS)
    lines = [(f"| setting | lr | generated unique {at} | argmax unique {at} | recovered? | "
              f"val/loss @ {STEPS[0]} | val/loss @ {STEPS[-1]} |"),
             "|---|---|" + "---:|" * (2 * len(STEPS)) + "---|---:|---:|"]
    for t in trials:
        loss = cells(t, "val/loss", ".2f")
        lines.append(" | ".join([
            f"| {t['setting']}", f"{t['lr']:g}", *cells(t, "collapse/unique_tokens", ".0f"),
            *cells(t, "collapse/argmax_unique", ".0f"),
            recovery(t["reports"]["collapse/unique_tokens"]), loss[0], loss[-1]]) + " |")
    return "\n".join(lines)


def read_trials(results_dir: str) -> list[dict]:
    """Per-report numbers of each trial, in the order of the sweep's points_to_evaluate."""
    import yaml
    from ray.tune import ExperimentAnalysis

    points = yaml.safe_load(Path(results_dir, "sweep.yaml").read_text())["search"]["points_to_evaluate"]
    analysis = ExperimentAnalysis(results_dir)
    trials = []
    for trial in analysis.trials:
        df = analysis.trial_dataframes[trial.trial_id].sort_values("training_iteration")
        config = {k: v for k, v in trial.config.items() if k != "max_iterations"}
        row = next(i for i, p in enumerate(points) if all(config.get(k) == v for k, v in p.items()))
        trials.append({
            "point": row, "setting": setting_name(config), "lr": config["lr"],
            "trial_id": trial.trial_id, "status": trial.status, "config": config,
            "steps": [int(i) * config["steps_per_report"] for i in df["training_iteration"]],
            "reports": {m: [float(v) for v in df[m]] for m in METRICS},
            "last_sample": str(df["samples"].iloc[-1]).split("\n---\n")[0],
        })
    return sorted(trials, key=lambda t: t["point"])


def plot(trials: Sequence[dict], path: Path) -> None:
    from collapsetune.plots import plt, save_figure  # pyplot on the Agg backend

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    titles = {"collapse/unique_tokens": "generated (16 greedy continuations)",
              "collapse/argmax_unique": "teacher-forced argmax (seeds/003's count)"}
    for ax, (metric, title) in zip(axes, titles.items()):
        for t in trials:
            style = "--" if " + " in t["setting"] else "-"  # regularised: dashed
            ax.plot(t["steps"], t["reports"][metric], style, marker="o", ms=3, label=t["setting"])
        ax.set(yscale="log", xlabel="step", title=title)
        ax.grid(alpha=0.3, which="both")
    axes[0].axhline(THRESHOLD, color="grey", lw=0.8, ls=":")  # the rule counts generated tokens
    axes[0].set_ylabel("distinct tokens (log)")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"BitNet LM (vocab 1024, d_model 64, 2 layers); dotted: the main sweep's "
                 f"collapse threshold ({THRESHOLD} generated tokens)")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", default=str(SWEEP), help="the sweep file to run")
    parser.add_argument("--storage", default="results", help="where the sweep's results folder goes")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="sweep overrides, e.g. max_concurrent=1 on a shared machine")
    parser.add_argument("--from", dest="results", help="read this results folder instead of running")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "seed_table.json"))
    parser.add_argument("--plot", default=str(ROOT / "docs" / "plots" / "seed_table.png"))
    args = parser.parse_args()

    from collapsetune.storage import location

    wall = None
    results = location(args.results) if args.results else None  # Ray reads absolute paths only
    if results is None:
        from collapsetune.launch import run_sweep
        from collapsetune.spec import load_sweep

        start = time.perf_counter()
        results = run_sweep(load_sweep(args.sweep, [f"storage={args.storage}", *args.set]))
        wall = time.perf_counter() - start
    trials = read_trials(results)
    table = make_table(trials)
    print(f"\n{table}\n")
    if wall is not None:
        print(f"wall time {wall // 60:.0f} min {wall % 60:02.0f} s (Ray start-up included)")

    import torch

    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({
        "command": " ".join(["python", *sys.argv]), "results_dir": results, "wall_s": wall,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                   f"Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"), "threshold": THRESHOLD, "table_steps": STEPS,
        "table": table, "trials": trials,
    }, indent=1))
    plot(trials, Path(args.plot))
    print(f"wrote {args.json} and {args.plot}")


if __name__ == "__main__":
    main()
