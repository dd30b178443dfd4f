"""Rules that wait for a lasting collapse vs the eager threshold rules (issue 11, item 1).

For each benchmark sweep and seed, one FIFO sweep runs with no rules, every trial to
`max_iterations` (random search with the seed, `config.seed` = the seed: the same
configurations as benchmarks/compare.py's sweeps). Each rule set below is then replayed on
those full trajectories with the library's own `CollapseMonitor`, report by report, exactly
as a trial's CollapseTrainable runs it: the report where the verdict first becomes
`collapsed` is where the stopper would end that trial.

Why a replay is exact here: training is deterministic per configuration and seed (compare.py
checks this as `same_as_fifo`), and under FIFO a stopped trial changes no other trial, so a
rule's stopped run equals the first reports of the FIFO run. (With ASHA a stop frees a slot
and rungs shift; compare.py measures that interplay for the shipped rules.)

Measured per rule set, against FIFO with no rules:
  stopped                trials the rules stop
  would have recovered   stopped trials whose FIFO run does not end collapsed (the shipped
                         rule's conditions do not hold on its last `patience` reports;
                         the same definition as compare.py's, for every rule set)
  saving                 1 - (trial-iterations, CPU-seconds) run / FIFO's
  of the eager saving    a rule set's iteration saving / the eager (shipped) rule's

Run:  python benchmarks/rules.py --seeds 0 1 2
Writes benchmarks/results/rules.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from compare import onset, run_variant  # noqa: E402  (benchmarks/ is not a package)

# Per benchmark sweep: the rule sets replayed, the shipped (eager) one first. A waiting rule
# is the shipped threshold with `unless_improving` (it holds only while the metric is not
# moving back towards health) or `fell_from_best` added; grace and patience are unchanged.
RULE_SETS: dict[str, dict[str, str]] = {
    "bitnet_lm.yaml": {
        "eager (shipped)": "[{metric: collapse/unique_tokens, below: 8, patience: 2, grace: 3}]",
        "waiting: unless up 1 over 2": "[{metric: collapse/unique_tokens, below: 8, unless_improving: {by: 1, over: 2}, "
                                       "patience: 2, grace: 3}]",
        "waiting: unless up 2 over 3": "[{metric: collapse/unique_tokens, below: 8, unless_improving: {by: 2, over: 3}, "
                                       "patience: 2, grace: 3}]",
        "waiting: fell 50% from best or below 8 unless up 1 over 2":
            "[{metric: collapse/unique_tokens, below: 8, unless_improving: {by: 1, over: 2}, patience: 2, grace: 3}, "
            "{metric: collapse/unique_tokens, fell_from_best: 0.5, patience: 2, grace: 3}]",
        "patient: grace 5, patience 3": "[{metric: collapse/unique_tokens, below: 8, patience: 3, grace: 5}]",
    },
    "audio_caption.yaml": {
        "eager (shipped)": "[{metric: collapse/unique_captions, below: 0.05, patience: 2, grace: 1}]",
        "waiting: unless up 0.01 over 2": "[{metric: collapse/unique_captions, below: 0.05, "
                                          "unless_improving: {by: 0.01, over: 2}, patience: 2, grace: 1}]",
        "waiting: unless up 0.01 over 3": "[{metric: collapse/unique_captions, below: 0.05, "
                                          "unless_improving: {by: 0.01, over: 3}, patience: 2, grace: 1}]",
        "patient: grace 5, patience 3": "[{metric: collapse/unique_captions, below: 0.05, patience: 3, grace: 5}]",
    },
    "mop_clip.yaml": {
        "eager (shipped)": "[{metric: collapse/subprompt_cos_max, above: 0.9, patience: 2, grace: 4}, "
                           "{metric: collapse/assign_max_share, above: 0.95, patience: 2, grace: 4}]",
        "waiting: unless down 0.01 over 2": "[{metric: collapse/subprompt_cos_max, above: 0.9, "
                                            "unless_improving: {by: 0.01, over: 2}, patience: 2, grace: 4}, "
                                            "{metric: collapse/assign_max_share, above: 0.95, "
                                            "unless_improving: {by: 0.01, over: 2}, patience: 2, grace: 4}]",
        "waiting: unless down 0.02 over 2": "[{metric: collapse/subprompt_cos_max, above: 0.9, "
                                            "unless_improving: {by: 0.02, over: 2}, patience: 2, grace: 4}, "
                                            "{metric: collapse/assign_max_share, above: 0.95, "
                                            "unless_improving: {by: 0.02, over: 2}, patience: 2, grace: 4}]",
        "waiting: unless down 0.005 over 3": "[{metric: collapse/subprompt_cos_max, above: 0.9, "
                                             "unless_improving: {by: 0.005, over: 3}, patience: 2, grace: 4}, "
                                             "{metric: collapse/assign_max_share, above: 0.95, "
                                             "unless_improving: {by: 0.005, over: 3}, patience: 2, grace: 4}]",
    },
}


def rules_of(text: str):
    from collapsetune.collapse import Rule

    return tuple(Rule.from_yaml(raw) for raw in yaml.safe_load(text))


def stop_report(rules, reports: list[dict]) -> int | None:
    """1-based report on which the monitor first says `collapsed` (the stopper's report)."""
    from collapsetune.collapse import CollapseMonitor

    monitor = CollapseMonitor(rules)
    for i, report in enumerate(reports, start=1):
        if monitor.update(report).status == "collapsed":
            return i
    return None


def replay(name: str, rules, truth, trials) -> dict:
    """One rule set on one seed's FIFO trajectories."""
    row = {"rules": name, "stopped": 0, "would_recover": 0, "iterations": 0, "cpu_s": 0.0,
           "fifo_iterations": 0, "fifo_cpu_s": 0.0, "lasting": 0, "lasting_stopped": 0, "reports_after_onset": []}
    for t in trials:
        stop = stop_report(rules, t.reports)
        ran = t.reports[:stop] if stop else t.reports
        began = onset(truth, t.reports)
        row["lasting"] += began is not None
        row["iterations"] += len(ran)
        row["cpu_s"] += sum(r["time/cpu_s"] for r in ran)
        row["fifo_iterations"] += len(t.reports)
        row["fifo_cpu_s"] += t.cpu_s
        if stop:
            row["stopped"] += 1
            if began is None:
                row["would_recover"] += 1
            else:
                row["lasting_stopped"] += 1
                row["reports_after_onset"].append(stop - began)
    return row


def oracle(truth, trials) -> dict:
    """The ceiling for a rule that never stops a recovering trial: every lasting collapse
    stopped at its onset report (known only in hindsight, from the full FIFO run)."""
    row = replay("oracle: lasting collapses at onset", (), truth, trials)
    for t in trials:
        began = onset(truth, t.reports)
        if began:
            row["stopped"] += 1
            row["lasting_stopped"] += 1
            row["iterations"] -= len(t.reports) - began
            row["cpu_s"] -= sum(r["time/cpu_s"] for r in t.reports[began:])
    return row


def table(rows: list[dict]) -> str:
    lines = ["| model | rules | seeds | stopped | would have recovered | lasting collapses stopped "
             "| iteration saving vs FIFO | CPU saving vs FIFO | of the eager rule's iteration saving |",
             "|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["rules"]), []).append(r)
    for (model, rules), rs in groups.items():
        it = sum(r["iterations"] for r in rs) / sum(r["fifo_iterations"] for r in rs)
        cpu = sum(r["cpu_s"] for r in rs) / sum(r["fifo_cpu_s"] for r in rs)
        eager = [g for (m, n), g in groups.items() if m == model][0]
        eager_saving = 1 - sum(r["iterations"] for r in eager) / sum(r["fifo_iterations"] for r in eager)
        share = f"{(1 - it) / eager_saving:.2f}" if eager_saving > 0 else "-"
        lines.append(f"| {model} | {rules} | {len(rs)} | {sum(r['stopped'] for r in rs)} "
                     f"| {sum(r['would_recover'] for r in rs)} "
                     f"| {sum(r['lasting_stopped'] for r in rs)} of {sum(r['lasting'] for r in rs)} "
                     f"| {1 - it:.3f} | {1 - cpu:.3f} | {share} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweeps", nargs="+", default=list(RULE_SETS), help="benchmark sweeps under benchmarks/sweeps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the embedded Ray (= trial slots)")
    args = parser.parse_args()
    import ray

    started = time.perf_counter()
    rows, trajectories = [], []  # the FIFO runs' rule metrics, so other rules can be replayed offline
    with tempfile.TemporaryDirectory() as storage:
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        try:
            for sweep in args.sweeps:
                for seed in args.seeds:
                    spec, wall, trials, _ = run_variant(ROOT / "benchmarks" / "sweeps" / sweep, "fifo", seed,
                                                        Path(storage), [])
                    truth = spec.collapse  # the shipped rules define "ends collapsed"
                    for name, text in RULE_SETS[sweep].items():
                        rows.append({"model": spec.trainable, "seed": seed, "fifo_wall_s": wall,
                                     **replay(name, rules_of(text), truth, trials)})
                    rows.append({"model": spec.trainable, "seed": seed, "fifo_wall_s": wall, **oracle(truth, trials)})
                    watched = sorted({c.metric for rule in truth for c in rule.conditions} | {"time/cpu_s"})
                    trajectories.append({"model": spec.trainable, "seed": seed, "trials": [
                        {"key": t.key, **{m: [r[m] for r in t.reports] for m in watched}} for t in trials]})
                    print(table(rows), flush=True)
        finally:
            ray.shutdown()
    summary = {
        "sweeps": args.sweeps, "seeds": args.seeds, "rule_sets": {s: RULE_SETS[s] for s in args.sweeps},
        "command": " ".join(["python benchmarks/rules.py --sweeps", *args.sweeps, "--seeds", *map(str, args.seeds)]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"), "total_wall_s": time.perf_counter() - started, "rows": rows,
        "fifo_trajectories": trajectories,
    }
    out = ROOT / "benchmarks" / "results" / "rules.json"
    out.write_text(json.dumps(summary, indent=2))
    print("\n" + table(rows))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
