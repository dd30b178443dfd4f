"""What a Ray worker loads to run one trial, and what that costs it (issue 13).

A trial's worker starts with `ray` imported. Unpickling the trainable then imports its
module, and running the trial may import more. Each case below runs that in a fresh Python
process, several times, the versions of the code side by side (`--code`, interleaved):

  plain Ray Tune            ray.tune's function trainable (what a plain Tuner ships)
  collapsetune, Sleeper     collapsetune.trainable and the rules, then one trial of the
                            benchmarks' Sleeper (a wrapper without torch) driven in-process:
                            setup, one report, a checkpoint saved and restored
  collapsetune, bitnet_lm   collapsetune.trainable and the built-in LM wrapper's module
                            (it needs torch); imports only

Measured per case (median over --repeats processes): seconds to import what the trainable
needs after `import ray`; seconds for the Sleeper's trial; the process's RSS at the end
(`import ray` alone is the first row), and how much of it is not backed by a file (shared
libraries are, and many workers share those pages); which heavy packages ended up loaded.

Run:  python benchmarks/worker_startup.py                                # this checkout
      git archive <commit> src | tar -x -C /tmp/before
      python benchmarks/worker_startup.py --code before=/tmp/before/src --code after=src
Prints a table and writes benchmarks/results/worker_startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEAVY = ("torch", "mlflow", "pandas", "pyarrow", "optuna", "sklearn", "tokenizers", "matplotlib")
CASES = ("import ray", "plain Ray Tune", "collapsetune, Sleeper", "collapsetune, bitnet_lm")

# Run in the child: {"import_s", "trial_s", "rss_mib", "loaded"} as one JSON line.
CHILD = r'''
import json, sys, tempfile, time

def memory_mib():  # resident, and of that not backed by a file (shared libraries are)
    with open("/proc/self/status") as f:
        kib = {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f) if k in ("VmRSS", "RssAnon")}
    return kib["VmRSS"] / 1024, kib["RssAnon"] / 1024

import ray

case, bench, heavy = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
import_s = trial_s = None
start = time.perf_counter()
if case == "plain Ray Tune":
    import ray.tune.trainable.function_trainable
    import_s = time.perf_counter() - start
elif case == "collapsetune, bitnet_lm":
    import collapsetune.trainable
    from collapsetune.registry import resolve_trainable
    resolve_trainable("bitnet_lm")
    import_s = time.perf_counter() - start
elif case == "collapsetune, Sleeper":
    import collapsetune.trainable
    from collapsetune.collapse import Below, Rule
    import_s = time.perf_counter() - start
    import ray.tune.trainable.trainable as tune_trainable
    from collapsetune.trainable import TrialPlan, make_trainable

    with tempfile.TemporaryDirectory() as tmp:
        tune_trainable.DEFAULT_STORAGE_PATH = tmp  # not ~/ray_results
        rule = Rule((Below("collapse/unique_tokens", 20),), patience=2, grace=1)
        cls = make_trainable(TrialPlan("_sleeper:Sleeper", (bench,), (rule,), "val/loss", "min"), "Sleeper")
        start = time.perf_counter()
        trial = cls(config={"seconds": 0.0})
        trial.train()
        trial.restore(trial.save(f"{tmp}/checkpoint"))
        trial.stop()
        trial_s = time.perf_counter() - start
rss, anon = memory_mib()
print(json.dumps({"import_s": import_s, "trial_s": trial_s, "rss_mib": rss, "anon_mib": anon,
                  "loaded": [m for m in heavy if m in sys.modules],
                  "collapsetune": getattr(sys.modules.get("collapsetune"), "__file__", None)}))
'''


def measure(case: str, src: Path) -> dict:
    """One fresh process running `case` against the collapsetune in `src`."""
    root = src.resolve().parent  # the checkout: its trainables/ beside src/
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src.resolve()), str(root)])}
    out = subprocess.run([sys.executable, "-c", CHILD, case, str(HERE), ",".join(HEAVY)], env=env,
                         capture_output=True, text=True, check=True, cwd=HERE)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", action="append", metavar="NAME=SRC",
                        help="a version of the code: a name and its src/ folder (repeatable; default: this checkout)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "worker_startup.json")
    args = parser.parse_args()
    codes = dict(c.split("=", 1) for c in args.code) if args.code else {"this checkout": str(HERE.parent / "src")}
    samples: dict[tuple[str, str], list[dict]] = {(name, case): [] for name in codes for case in CASES}
    for _ in range(args.repeats):  # interleaved, so a busy moment hits every version alike
        for name, src in codes.items():
            for case in CASES:
                samples[name, case].append(measure(case, Path(src)))
    rows = []
    for (name, case), runs in samples.items():
        paths = {r["collapsetune"] for r in runs if r["collapsetune"]}
        rows.append({"code": name, "src": codes[name], "case": case, "repeats": len(runs),
                     "import_s": _median([r["import_s"] for r in runs]),
                     "trial_s": _median([r["trial_s"] for r in runs]),
                     "rss_mib": _median([r["rss_mib"] for r in runs]),
                     "anon_mib": _median([r["anon_mib"] for r in runs]),
                     "loaded": sorted({m for r in runs for m in r["loaded"]}),
                     "collapsetune_from": sorted(paths)})
    print("| code | case | import s (after `import ray`) | Sleeper trial s | RSS MiB (not file-backed) "
          "| heavy packages loaded |")
    print("|---|---|---:|---:|---:|---|")
    for r in rows:
        cell = {k: "" if r[k] is None else f"{r[k]:.2f}" for k in ("import_s", "trial_s")}
        print(f"| {r['code']} | {r['case']} | {cell['import_s']} | {cell['trial_s']} "
              f"| {r['rss_mib']:.0f} ({r['anon_mib']:.0f}) "
              f"| {', '.join(r['loaded']) or '-'} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": "python benchmarks/worker_startup.py" + "".join(f" --code {k}={v}" for k, v in codes.items()
                                                                     if args.code) + f" --repeats {args.repeats}",
        "date": time.strftime("%Y-%m-%d %H:%M"), "load_average_at_end": os.getloadavg(),
        "machine": f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores",
        "rows": rows,
    }, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
