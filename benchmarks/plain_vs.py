"""collapsetune against what a Ray Tune user writes instead, on real sweeps (issue 29, item 1).

For one sweep file and each seed, three sweeps run back to back on one embedded Ray (the
order rotates with the seed, so no variant always runs first), MLflow off in all three:

  collapsetune  the file as `collapsetune run` builds it (benchmarks/compare.py's `fit`):
                rules, penalised objective, CollapseASHA, CollapseStopper, reused actors
  plain         the same wrapper class (collapsetune.registry.resolve_trainable) in a plain
                function trainable that calls `tune.report` after each `step()`; the same
                OptunaSearch (TPE with the seed, points_to_evaluate) behind a
                ConcurrencyLimiter of the same concurrency; Ray's ASHAScheduler with the
                file's grace_period and reduction_factor on the raw objective metric; and a
                FunctionStopper of a few lines (`naive_stopper`) applying the file's collapse
                thresholds after each rule's grace with patience 2 (its fixed-threshold
                rules: a waiting rule needs a history such a stopper does not keep)
  plain_reuse   plain with `reuse_actors=True`

Per sweep: reports run; trial CPU-s (the sum of per-report process CPU, `time/cpu_s`,
which counts building the wrapper in the first report; plain measures it in its function
the same way; the pictures collapsetune draws on a trial's verdict or last report are in
that report's (before 2026-12-06 they were in none: docs/benchmarks.md section 15);
collapsetune's checkpoint at a trial's end, where it draws a cut trial's pictures when
`draw_cut_trials` asks, is in no report and is added from a timed `save_checkpoint`); wall seconds of
`fit()`; trials ASHA cut among healthy ones (stopped before max_iterations, not by the
stopper, and not collapsed by the file's rules on their last reports); the picked trial
(plain: Ray's `get_best_result` on the raw metric, scope last; collapsetune: best healthy,
on its penalised objective) with its objective and whether it is collapsed (the file's
rule conditions hold on its last `patience` reports: benchmarks/compare.py's `onset`).

Run:  python benchmarks/plain_vs.py --sweep sweeps/mop_clip.yaml --seeds 0 1 2 3 4
(`--resume` keeps the seeds an earlier run of the same sweep file wrote to --out: a long run
stops and goes on seed by seed.)
Writes benchmarks/results/plain_vs_<trainable>.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: `benchmarks.compare` beside it
    sys.path.insert(0, str(ROOT))

from benchmarks._sweep_key import sweep_key  # noqa: E402
from benchmarks._threshold_stopper import crossed, threshold_stopper  # noqa: E402
from benchmarks.compare import fit, machine, onset  # noqa: E402

VARIANTS = ("collapsetune", "plain", "plain_reuse")
CPU_KEY = "time/cpu_s"  # collapsetune.trainable.CPU_KEY
STATUS_KEY = "collapse.status"  # collapsetune.collapse.STATUS_KEY
STOPPING = ("collapsed", "diverged")
PATIENCE = 2  # the naive stopper's, whatever the file's rules say
END_CPU_FILE = "end_cpu_s.txt"  # in collapsetune's checkpoints: CPU of the save that wrote it


# -- the plain side: what a user writes --------------------------------------------------


def fixed_rules(rules) -> list:
    """The rules a plain user's stopper applies: those whose conditions are all fixed `above`
    or `below` thresholds. A waiting rule (`unless_improving`) reads the trial's history,
    which collapsetune's rules keep and a five-line stopper does not, so the plain side goes
    without it (sweeps/mop_clip.yaml's third rule)."""
    return [r for r in rules if all(c.KIND in ("above", "below") for c in r.conditions)]


def naive_stopper(rules, patience: int = PATIENCE):
    """A FunctionStopper's function of a few lines: stop a trial once some fixed-threshold
    rule's thresholds have been crossed on `patience` reports in a row after the rule's grace."""
    fixed = fixed_rules(rules)
    return threshold_stopper([(lambda result: any(
        result["training_iteration"] > r.grace and all(crossed(c, result) for c in r.conditions) for r in fixed),
        patience)])


def check_thresholds(rules, sweep: str) -> None:
    """The naive stopper needs a fixed threshold to apply."""
    if not fixed_rules(rules):
        raise SystemExit(f"{sweep}: collapse: the plain side's stopper applies fixed `above` and `below` "
                         "thresholds only, and no rule of the file is one")


def plain_function(wrapper_cls: type, max_iterations: int):
    """The same wrapper in a function trainable; CPU per report measured as collapsetune's
    trainable does (process time since the previous report; the first counts building it)."""
    from ray import tune

    def train(config: dict) -> None:
        mark = time.process_time()
        wrapper = wrapper_cls(dict(config))
        for _ in range(max_iterations):
            metrics = dict(wrapper.step())
            now = time.process_time()
            metrics[CPU_KEY], mark = now - mark, now
            tune.report(metrics)

    return train


def plain_tuner(spec, folder: str, concurrency: int, reuse: bool):
    from optuna.samplers import TPESampler
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch
    from ray.tune.stopper import FunctionStopper

    from collapsetune.launch import wrapper_class
    from collapsetune.spec import param_space

    wrapper_cls = wrapper_class(spec)
    searcher = OptunaSearch(sampler=TPESampler(seed=spec.search.seed),
                            points_to_evaluate=[dict(p) for p in spec.search.points_to_evaluate] or None)
    storage, name = folder.rsplit("/", 1)
    return tune.Tuner(
        tune.with_resources(plain_function(wrapper_cls, spec.max_iterations),
                            {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}),
        param_space=param_space(spec),
        tune_config=tune.TuneConfig(
            metric=spec.objective.metric, mode=spec.objective.mode, num_samples=spec.num_samples,
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=concurrency),
            scheduler=ASHAScheduler(time_attr="training_iteration", max_t=spec.max_iterations,
                                    grace_period=spec.scheduler.grace_period,
                                    reduction_factor=spec.scheduler.reduction_factor),
            reuse_actors=reuse),
        run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0,
                                  stop=FunctionStopper(naive_stopper(spec.collapse))),
    )


@contextlib.contextmanager
def timed_end_checkpoints():
    """collapsetune's trainable as shipped, with each `save_checkpoint`'s CPU written into the
    checkpoint: the end-of-trial save is in no report's `time/cpu_s`."""
    from collapsetune import launch

    shipped = launch._trainable

    def counted(spec):
        base = shipped(spec)

        class Counted(base):
            def save_checkpoint(self, checkpoint_dir: str) -> None:
                start = time.process_time()
                super().save_checkpoint(checkpoint_dir)
                Path(checkpoint_dir, END_CPU_FILE).write_text(repr(time.process_time() - start))

        Counted.__name__ = base.__name__
        return Counted

    launch._trainable = counted
    try:
        yield
    finally:
        launch._trainable = shipped


# -- bookkeeping (pure; tests/benchmarks/test_plain_vs.py) --------------------------------


def stopped_by(variant: str, reports: list[dict], rules, max_iterations: int) -> str:
    """Why a trial ended: `stopper` (collapse), `asha` (cut before max_iterations) or `end`."""
    if variant == "collapsetune":
        if reports[-1].get(STATUS_KEY) in STOPPING:
            return "stopper"
    else:
        stop = naive_stopper(rules)
        if [stop("t", {**r, "training_iteration": i}) for i, r in enumerate(reports, 1)][-1]:
            return "stopper"
    return "asha" if len(reports) < max_iterations else "end"


def sweep_record(variant: str, seed: int, wall: float, trials: list[dict], picked: dict, spec) -> dict:
    """One sweep's numbers. Each trial: {"reports": [...], "end_cpu_s": float}."""
    metric, rules = spec.objective.metric, spec.collapse
    sign = 1.0 if spec.objective.mode == "max" else -1.0
    ends = [stopped_by(variant, t["reports"], rules, spec.max_iterations) for t in trials]
    return {
        "variant": variant, "seed": seed, "wall_s": wall, "trials": len(trials),
        "reports": sum(len(t["reports"]) for t in trials),
        "cpu_s": sum(r[CPU_KEY] for t in trials for r in t["reports"]) + sum(t.get("end_cpu_s", 0.0) for t in trials),
        "end_cpu_s": sum(t.get("end_cpu_s", 0.0) for t in trials),
        "stopped_by_stopper": ends.count("stopper"),
        "asha_cuts": ends.count("asha"),
        "asha_cuts_healthy": sum(e == "asha" and onset(rules, t["reports"]) is None for e, t in zip(ends, trials)),
        "ran_to_end": ends.count("end"),
        "picked_objective": float(picked["reports"][-1][metric]),
        "picked_collapsed": onset(rules, picked["reports"]) is not None,
        "picked_reports": len(picked["reports"]),
        # what a one-line final check on the plain side would pick: the best trial not collapsed at its end
        "best_healthy_objective": max((float(t["reports"][-1][metric]) * sign for t in trials
                                       if onset(rules, t["reports"]) is None), default=float("nan")) * sign,
    }


def _better_or_equal(a: float, b: float, mode: str) -> bool:
    return a >= b if mode == "max" else a <= b


def goals(records: list[dict], mode: str, against: str = "plain_reuse") -> dict:
    """The issue's goals, collapsetune against `against`, medians over seeds of per-seed ratios."""
    by = {(r["variant"], r["seed"]): r for r in records}
    seeds = sorted({s for v, s in by if v == "collapsetune" and (against, s) in by})
    if not seeds:
        return {}
    ct = [by["collapsetune", s] for s in seeds]
    other = [by[against, s] for s in seeds]
    per_report = [(a["cpu_s"] / a["reports"]) / (b["cpu_s"] / b["reports"]) for a, b in zip(ct, other)]
    total = [a["cpu_s"] / b["cpu_s"] for a, b in zip(ct, other)]
    equal_or_better = sum(_better_or_equal(a["picked_objective"], b["picked_objective"], mode) for a, b in zip(ct, other))
    # The "picked healthy objective": the other side's pick is often a collapsed model,
    # so collapsetune's pick is also held against the best trial of that sweep that is not.
    healthy = [(a["picked_objective"], b.get("best_healthy_objective", math.nan)) for a, b in zip(ct, other)]
    return {
        "against": against, "seeds": seeds,
        "per_report_cpu_ratio": statistics.median(per_report), "per_report_cpu_ratios": per_report,
        "total_cpu_ratio": statistics.median(total), "total_cpu_ratios": total,
        "picked_equal_or_better": equal_or_better,
        "picked_equal_or_better_than_best_healthy": sum(not math.isnan(h) and _better_or_equal(p, h, mode)
                                                        for p, h in healthy),
        "collapsed_picks": sum(a["picked_collapsed"] for a in ct),
    }


def _per_seed(values: list, fmt: str) -> str:
    return " / ".join(format(v, fmt) for v in values)


def table(records: list[dict]) -> str:
    by = defaultdict(list)
    for r in sorted(records, key=lambda r: r["seed"]):
        by[r["variant"]].append(r)
    variants = [v for v in VARIANTS if by[v]]
    seeds = "/".join(f"s{r['seed']}" for r in by[variants[0]])
    rows = [
        ("reports run", lambda rs: _per_seed([r["reports"] for r in rs], "d")),
        ("trial CPU-s", lambda rs: _per_seed([r["cpu_s"] for r in rs], ".1f")),
        ("trial CPU-s per report", lambda rs: _per_seed([r["cpu_s"] / r["reports"] for r in rs], ".3f")),
        ("wall s", lambda rs: _per_seed([r["wall_s"] for r in rs], ".0f")),
        ("stopped for collapse", lambda rs: _per_seed([r["stopped_by_stopper"] for r in rs], "d")),
        ("healthy trials cut by ASHA", lambda rs: _per_seed([r["asha_cuts_healthy"] for r in rs], "d")),
        ("trials run to the end", lambda rs: _per_seed([r["ran_to_end"] for r in rs], "d")),
        ("picked objective", lambda rs: _per_seed([r["picked_objective"] for r in rs], ".4f")),
        ("picked trial collapsed", lambda rs: f"{sum(r['picked_collapsed'] for r in rs)} of {len(rs)}"),
    ]
    out = [f"| ({seeds}) | " + " | ".join(variants) + " |", "|---" * (len(variants) + 1) + "|"]
    out += [f"| {name} | " + " | ".join(cell(by[v]) for v in variants) + " |" for name, cell in rows]
    return "\n".join(out)


# -- running -------------------------------------------------------------------------------


def _trials(grid, variant: str) -> list[dict]:
    out = []
    for result in grid:
        trial = {"path": result.path, "reports": result.metrics_dataframe.to_dict("records"), "end_cpu_s": 0.0}
        if variant == "collapsetune" and result.checkpoint is not None:
            spent = Path(result.checkpoint.path, END_CPU_FILE)
            trial["end_cpu_s"] = float(spent.read_text()) if spent.exists() else 0.0
        out.append(trial)
    return out


def run_variant(sweep: str, variant: str, seed: int, storage: str, overrides: list[str]) -> dict:
    from collapsetune.launch import check_resources
    from collapsetune.spec import load_sweep

    spec = load_sweep(sweep, [*overrides, f"search.seed={seed}", f"config.seed={seed}", f"storage={storage}",
                              "mlflow.tracking_uri=null"])
    folder = f"{storage}/{spec.name}-{variant}-{seed}"
    concurrency = check_resources(spec)
    if variant == "collapsetune":
        with timed_end_checkpoints():
            wall, grid = fit(spec, folder, f"{variant} seed {seed}")
        picked = grid.get_best_result(metric="objective", mode=spec.objective.mode, scope="last")
    else:
        tuner = plain_tuner(spec, folder, concurrency, reuse=variant == "plain_reuse")
        start = time.perf_counter()
        grid = tuner.fit()
        wall = time.perf_counter() - start
        if any(r.error for r in grid):
            raise RuntimeError(f"{variant} seed {seed}: a trial failed")
        picked = grid.get_best_result(metric=spec.objective.metric, mode=spec.objective.mode, scope="last")
    trials = _trials(grid, variant)
    chosen = next(t for t in trials if t["path"] == picked.path)
    return sweep_record(variant, seed, wall, trials, chosen, spec)


def kept_records(out: Path, sweep: str, sweep_sha: str, overrides: list[str]) -> list[dict]:
    """The records of `out`'s seeds that ran all three variants, if `out` was written for the
    same sweep file (by content) and overrides; an error naming what differs otherwise."""
    if not out.exists():
        return []
    old = json.loads(out.read_text())
    if (old.get("sweep_sha"), old.get("overrides")) != (sweep_sha, overrides):
        raise SystemExit(f"--resume: {out} was written for {old.get('sweep')} (content {old.get('sweep_sha')}, "
                         f"overrides {old.get('overrides')}), not {sweep} (content {sweep_sha}, overrides "
                         f"{overrides}); give another --out or drop --resume")
    variants: dict[int, set[str]] = defaultdict(set)
    for r in old["records"]:
        variants[r["seed"]].add(r["variant"])
    return [r for r in old["records"] if variants[r["seed"]] == set(VARIANTS)]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sweep", default="sweeps/mop_clip.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the embedded Ray (= trial slots)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of the sweep file in all three sweeps")
    parser.add_argument("--out", default=None, help="default benchmarks/results/plain_vs_<trainable>.json")
    parser.add_argument("--resume", action="store_true",
                        help="keep the seeds --out already holds for the same sweep file and overrides; run the rest")
    args = parser.parse_args(argv)
    import ray

    from collapsetune.spec import load_sweep

    spec = load_sweep(args.sweep, args.set)
    check_thresholds(spec.collapse, args.sweep)
    if spec.scheduler.type != "asha" or spec.search.algorithm != "optuna":
        raise SystemExit(f"{args.sweep}: the comparison needs scheduler.type asha and search.algorithm optuna")
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"plain_vs_{spec.trainable}.json")
    sweep_sha = sweep_key(args.sweep)
    records = kept_records(out, args.sweep, sweep_sha, args.set) if args.resume else []
    done = {r["seed"] for r in records}
    if done:
        print(f"{out}: seeds {sorted(done)} kept; running {[s for s in args.seeds if s not in done]}", flush=True)
    started, cpu_started = time.perf_counter(), os.getloadavg()
    with tempfile.TemporaryDirectory() as storage:
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        try:
            for i, seed in enumerate(args.seeds):
                order = VARIANTS[i % 3:] + VARIANTS[:i % 3]
                for variant in order if seed not in done else ():
                    records.append(run_variant(args.sweep, variant, seed, storage, args.set))
                    r = records[-1]
                    print(f"seed {seed} {variant:12s} reports {r['reports']:3d} cpu {r['cpu_s']:6.1f} "
                          f"wall {r['wall_s']:5.0f} picked {r['picked_objective']:.4f}", flush=True)
                summary = {
                    "sweep": args.sweep, "sweep_sha": sweep_sha, "overrides": args.set,
                    "seeds": sorted({r["seed"] for r in records}),
                    "command": " ".join(["python benchmarks/plain_vs.py --sweep", args.sweep, "--seeds",
                                         *map(str, args.seeds), *(f"--set '{o}'" for o in args.set)]),
                    "machine": machine(),
                    "load_average_at_start": cpu_started, "load_average_now": os.getloadavg(),
                    "date": time.strftime("%Y-%m-%d"), "total_wall_s": time.perf_counter() - started,
                    "goals": goals(records, spec.objective.mode),
                    "goals_vs_plain": goals(records, spec.objective.mode, against="plain"),
                    "records": records,
                }
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(summary, indent=1))  # after each seed: a cut-short run keeps its seeds
        finally:
            ray.shutdown()
    print(f"\n{spec.name}: {spec.num_samples} trials per sweep, seeds {args.seeds}\n")
    print(table(records))
    for key in ("goals", "goals_vs_plain"):
        g = summary[key]
        print(f"\ncollapsetune vs {g['against']}: per-report CPU x{g['per_report_cpu_ratio']:.2f}, "
              f"total CPU x{g['total_cpu_ratio']:.2f}, picked equal or better on {g['picked_equal_or_better']} "
              f"of {len(g['seeds'])} seeds (than its best healthy trial: "
              f"{g['picked_equal_or_better_than_best_healthy']}), collapsed picks {g['collapsed_picks']}")
    print(f"\nwrote {out}")
    return summary


if __name__ == "__main__":
    main()
