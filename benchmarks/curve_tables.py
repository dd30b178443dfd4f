"""Learning-curve tables of the built-in models, for the replayed collapse benchmark (issue 23).

Each table holds N configurations drawn from a shipped sweep's search space, each trained to
the sweep's full horizon with no stopping. A row is one configuration: its knobs, and per
report every metric the wrapper returned, the CPU-seconds the report cost (`time/cpu_s`: the
worker process's CPU time, building the model and data included in report 1) and the verdict
the sweep's own collapse rules give on that report (`CollapseMonitor`, exactly as the
trainable runs it). benchmarks/collapse_bench.py replays sweeps against these rows.

Configurations: the sweep's `points_to_evaluate` first (so a replayed sweep's fixed first
trials are exact), then a scrambled Sobol sequence (scipy.stats.qmc, seed in TABLES) mapped
through each dimension: uniform and loguniform by their CDF, choice/grid and randint by
equal-width bins. Row `i` is always the same configuration, so generation can stop anywhere
and resume: a finished row is appended to the table as one JSON line (flushed and synced),
and a rerun skips the indices already there (a torn last line after a kill is dropped).

Training is seeded (`seed` in each wrapper's config, fixed at 0 here), so a row is what a
real trial of that configuration reports (tests/benchmarks/test_collapse_bench.py checks a
real sweep against it).

Run:   python benchmarks/curve_tables.py mop_clip --rows 256 --workers 2
       python benchmarks/curve_tables.py bitnet_lm --rows 256 --workers 1     (hours; resumable)
Writes benchmarks/tables/<model>.jsonl, one header line then one line per configuration.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TABLES_DIR = ROOT / "benchmarks" / "tables"
FORMAT = 1  # bump when a row's layout changes; the replay refuses a table of another format


@dataclass(frozen=True)
class TableSpec:
    """Which sweep a table comes from, and how it is drawn."""

    sweep: str  # relative to the repository root
    overrides: tuple[str, ...] = ()  # `--set` strings applied to the sweep
    rows: int = 256  # the minimum for this model
    sobol_seed: int = 0


TABLES: dict[str, TableSpec] = {
    "mop_clip": TableSpec("sweeps/mop_clip.yaml"),
    "bitnet_lm": TableSpec("sweeps/bitnet_lm.yaml"),
    # The scene set, where the seed's collapse lasts (docs/audio_caption.md); its clips are 5 s.
    "audio_caption": TableSpec("sweeps/audio_caption.yaml",
                               ("config.dataset=synthetic_scenes", "config.clip_seconds=5.0"), rows=96),
}


def load_spec(model: str):
    from collapsetune.spec import load_sweep

    table = TABLES[model]
    return load_sweep(ROOT / table.sweep, list(table.overrides))


def configurations(spec, n: int, seed: int) -> list[dict[str, Any]]:
    """The first `n` searched configurations of a table: points_to_evaluate, then Sobol."""
    from scipy.stats import qmc

    from collapsetune.spec._base import thaw

    dims = dict(spec.search_space)
    searched = [k for k, d in dims.items() if d.kind != "const"]
    fixed = {k: thaw(d.args[0]) for k, d in dims.items() if d.kind == "const"}
    points = [{**fixed, **thaw(p)} for p in spec.search.points_to_evaluate][:n]
    left = n - len(points)
    if left > 0:
        sobol = qmc.Sobol(d=len(searched), scramble=True, seed=seed)
        u = sobol.random(2 ** math.ceil(math.log2(max(left, 2))))[:left]
        for row in u:
            points.append({**fixed, **{k: _map(dims[k], float(x)) for k, x in zip(searched, row)}})
    return points


def _map(dim, u: float) -> Any:
    """A point of [0, 1) to a value of the dimension (inverse CDF)."""
    from collapsetune.spec._base import thaw

    args = thaw(dim.args)
    if dim.kind == "uniform":
        return args[0] + u * (args[1] - args[0])
    if dim.kind == "loguniform":
        lo, hi = math.log(args[0]), math.log(args[1])
        return math.exp(lo + u * (hi - lo))
    if dim.kind == "randint":
        return int(args[0] + min(int(u * (args[1] - args[0])), args[1] - args[0] - 1))
    if dim.kind in ("choice", "grid"):
        return args[min(int(u * len(args)), len(args) - 1)]
    raise ValueError(f"cannot tabulate a {dim.kind} dimension")


def run_row(model: str, index: int, knobs: dict[str, Any]) -> dict[str, Any]:
    """Train one configuration to the sweep's horizon; its row. Runs in a worker process."""
    from collapsetune.registry import resolve_trainable
    from collapsetune.spec._base import thaw
    from collapsetune.trainable import TrialPlan

    spec = load_spec(model)
    plan = TrialPlan(wrapper=spec.trainable, search_dirs=(), rules=spec.collapse,
                     metric=spec.objective.metric, mode=spec.objective.mode)
    monitor = plan.monitor()
    mark = time.process_time()
    wall = time.monotonic()
    wrapper = resolve_trainable(spec.trainable)({**thaw(spec.config), **knobs, "max_iterations": spec.max_iterations})
    reports = []
    for _ in range(spec.max_iterations):
        metrics = {k: float(v) for k, v in wrapper.step().items()}
        verdict = monitor.update(metrics)
        now = time.process_time()
        reports.append({**{k: _round(v) for k, v in metrics.items()}, "time/cpu_s": round(now - mark, 4),
                        "status": verdict.status})
        mark = now
    return {"i": index, "config": knobs, "reports": reports, "verdict": monitor.verdict.status,
            "reason": monitor.verdict.reason, "wall_s": round(time.monotonic() - wall, 2)}


def _round(v: float) -> float | str:
    if not math.isfinite(v):
        return str(v)  # JSON has no nan/inf; the replay reads these back with float()
    return float(f"{v:.6g}")


def read_table(path: Path) -> tuple[dict, list[dict]]:
    """(header, rows) of a table; a torn last line (a kill mid-write) is left out."""
    header: dict = {}
    rows: list[dict] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if n == 0 and "format" in record:
                header = record
            elif "i" in record:
                rows.append(record)
    return header, rows


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "src", "trainables"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except OSError:
        return "unknown"


def tabulate(model: str, rows: int, workers: int, out: Path) -> None:
    spec = load_spec(model)
    table = TABLES[model]
    configs = configurations(spec, rows, table.sobol_seed)
    header = {"format": FORMAT, "model": model, "sweep": table.sweep, "overrides": list(table.overrides),
              "sobol_seed": table.sobol_seed, "max_iterations": spec.max_iterations,
              "objective": {"metric": spec.objective.metric, "mode": spec.objective.mode},
              "collapse": [r.to_yaml() for r in spec.collapse],
              "search_space": {k: d.to_yaml() for k, d in spec.search_space.items()},
              "commit": _commit(), "machine": f"{platform.node()} {os.cpu_count()} cores",
              "command": "python " + " ".join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])}
    done: set[int] = set()
    if out.exists():
        old_header, old_rows = read_table(out)
        if old_header and old_header.get("search_space") != header["search_space"]:
            raise SystemExit(f"{out}: was made from another search space; move it away to start anew")
        done = {r["i"] for r in old_rows}
        # Rewrite without a torn last line, keeping the first header (the commit that began it).
        lines = [json.dumps(old_header or header)] + [json.dumps(r) for r in old_rows]
        _write_whole(out, lines)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        _write_whole(out, [json.dumps(header)])
    todo = [i for i in range(rows) if i not in done]
    print(f"{model}: {len(done)} of {rows} rows already in {out}; {len(todo)} to run on {workers} worker(s)",
          flush=True)
    started = time.monotonic()
    finished = 0
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool, \
            open(out, "a", encoding="utf-8") as f:
        pending = set()
        queue = list(todo)
        while queue or pending:
            while queue and len(pending) < workers * 2:
                i = queue.pop(0)
                pending.add(pool.submit(run_row, model, i, configs[i]))
            ready, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in ready:
                row = future.result()
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())
                finished += 1
                elapsed = time.monotonic() - started
                cpu = sum(r["time/cpu_s"] for r in row["reports"])
                eta = elapsed / finished * (len(todo) - finished)
                print(f"[{elapsed / 60:5.1f} min] row {row['i']:4d} {row['verdict']:12s} {cpu:6.1f} CPU-s  "
                      f"{len(done) + finished}/{rows} done, ~{eta / 60:.0f} min left", flush=True)


def _write_whole(path: Path, lines: list[str]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", choices=sorted(TABLES))
    parser.add_argument("--rows", type=int, default=None, help="configurations (default: the issue's minimum)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/tables/<model>.jsonl")
    args = parser.parse_args()
    rows = args.rows or TABLES[args.model].rows
    tabulate(args.model, rows, args.workers, args.out or TABLES_DIR / f"{args.model}.jsonl")


if __name__ == "__main__":
    main()
