"""Orchestration overhead, side by side in one process: a sweep's wall time over the ideal
(sum of the trials' busy time / concurrency) for trials whose reports take 1 s each.

  A  plain Ray Tune: a function trainable, FIFO, no rules, no MLflow (the issue's anchor:
     6 trials x 10 x 1 s on 2 slots took 37.7 s against 30 s, 1.26x)
  B  collapsetune: CollapseTrainable (actors reused through reset_config), collapse rules,
     CollapseStopper, MLflow on SQLite, the same trials
  C  a plain Optuna in-process loop (2 threads) running the same trials

Run:  python benchmarks/overhead.py [--trials 6] [--reports 10] [--seconds 1.0]
Prints one table and writes benchmarks/results/overhead.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

SLOTS = 2
WRAPPER = '''
import time

class Sleeper:
    def __init__(self, config):
        self.seconds, self.t = config["seconds"], 0

    def step(self):
        self.t += 1
        time.sleep(self.seconds)
        return {"train/loss": 1.0 / self.t, "val/loss": 1.0 / self.t, "collapse/unique_tokens": 50.0}

    def state_dict(self):
        return {"t": self.t}

    def load_state_dict(self, state):
        self.t = state["t"]
'''


def plain_ray(trials: int, reports: int, seconds: float, storage: str) -> float:
    from ray import tune

    def trainable(config):
        for i in range(reports):
            time.sleep(config["seconds"])
            tune.report({"val/loss": 1.0 / (i + 1)})

    start = time.perf_counter()
    tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"seconds": seconds, "x": tune.grid_search(list(range(trials)))},
        run_config=tune.RunConfig(name="plain", storage_path=storage, verbose=0),
    ).fit()
    return time.perf_counter() - start


def collapsetune_sweep(trials: int, reports: int, seconds: float, work: Path) -> float:
    from collapsetune.launch import run_sweep
    from collapsetune.spec import load_sweep

    (work / "sleeper.py").write_text(WRAPPER)
    (work / "sweep.yaml").write_text(
        f"name: overhead\ntrainable: sleeper:Sleeper\nconfig: {{seconds: {seconds}}}\n"
        f"search_space: {{x: {{grid: {list(range(trials))}}}}}\n"
        "objective: {metric: val/loss, mode: min}\n"
        f"max_iterations: {reports}\nnum_samples: 1\nsearch: {{algorithm: random}}\n"
        "scheduler: {type: fifo}\n"
        "collapse: [{metric: collapse/unique_tokens, below: 20, patience: 2, grace: 1}]\n"
        f"storage: {work / 'results'}\nmlflow: {{tracking_uri: sqlite:///{work / 'mlflow.db'}}}\n"
    )
    spec = load_sweep(work / "sweep.yaml")
    start = time.perf_counter()
    run_sweep(spec)
    return time.perf_counter() - start


def optuna_loop(trials: int, reports: int, seconds: float) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_int("x", 0, trials)
        for i in range(reports):
            time.sleep(seconds)
            trial.report(1.0 / (i + 1), i)
        return 1.0 / reports

    study = optuna.create_study()
    start = time.perf_counter()
    study.optimize(objective, n_trials=trials, n_jobs=SLOTS)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--reports", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    import ray

    ideal = args.trials * args.reports * args.seconds / SLOTS
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        start = time.perf_counter()
        ray.init(address="local", num_cpus=SLOTS, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - start
        # Both Ray sweeps share one Ray instance, started once, so neither pays for it.
        walls = {
            "plain Ray Tune (function trainable)": plain_ray(args.trials, args.reports, args.seconds, str(work / "plain")),
            "collapsetune (rules + MLflow + reused actors)": collapsetune_sweep(args.trials, args.reports, args.seconds, work),
        }
        ray.shutdown()
    walls["plain Optuna loop (in-process, 2 threads)"] = optuna_loop(args.trials, args.reports, args.seconds)

    print(f"\n{args.trials} trials x {args.reports} reports x {args.seconds} s on {SLOTS} slots; "
          f"ideal {ideal:.1f} s; Ray start-up {ray_start:.1f} s (not counted)")
    print(f"{'runner':<48} {'wall s':>8} {'/ ideal':>8} {'s / trial over ideal':>22}")
    rows = []
    for name, wall in walls.items():
        per_trial = (wall - ideal) * SLOTS / args.trials
        print(f"{name:<48} {wall:>8.1f} {wall / ideal:>8.2f} {per_trial:>22.2f}")
        rows.append({"runner": name, "wall_s": wall, "ratio": wall / ideal, "overhead_s_per_trial": per_trial})
    out = Path(__file__).parent / "results" / "overhead.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({
        "args": vars(args), "ideal_s": ideal, "ray_start_s": ray_start, "rows": rows,
        "machine": f"{platform.machine()}, {platform.python_version()}, {__import__('os').cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
    }, indent=2))


if __name__ == "__main__":
    main()
