"""No report lost or doubled across a driver crash, counted at throughput scale (issue 13).

The throughput benchmark's collapsetune sweep (benchmarks/throughput.py: the SampledSleeper,
MLflow on SQLite) with a checkpoint every second, launched with `collapsetune run` in its
own process group. Once MLflow holds --kill-at of the sweep's reports, the driver and the
Ray it started get SIGKILL, and `collapsetune resume` finishes the sweep, as
tests/e2e/test_resume.py does with a small sweep. Then MLflow is counted as throughput.py
counts it: one run per trial, each with exactly one `val/loss` value for every step
1..reports; runs of trials lost between Ray's snapshots are in the trash.

Run:  python benchmarks/resume_count.py [--trials 32] [--rate 20] [--reports 200] [--kill-at 0.5]
Prints the count and writes benchmarks/results/resume_count.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent))  # for `throughput` when imported (tests), not run

from throughput import COUNT_METRIC, count_logged, write_sweep  # noqa: E402  (benchmarks/ is not a package)


def logged_values(db: Path) -> int:
    """COUNT_METRIC values in the MLflow store so far, read-only (the driver is writing it)."""
    if not db.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
            return conn.execute("SELECT count(*) FROM metrics WHERE key = ?", (COUNT_METRIC,)).fetchone()[0]
    except sqlite3.Error:  # no tables yet
        return 0


def _cli(*args: str, cwd: Path, log: Path) -> subprocess.Popen:
    """`collapsetune ARGS` in its own session, so it and the Ray it starts can be killed
    together; the collapsetune imported here is the one it runs."""
    import collapsetune

    here = str(Path(collapsetune.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "-m", "collapsetune.cli", *args], cwd=cwd, env=env,
                                start_new_session=True, stdout=out, stderr=subprocess.STDOUT)


def _kill(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # the driver and the Ray processes it started
    process.wait()


def run(trials: int, rate: float, reports: int, kill_at: float, cpu: float, work: Path) -> dict:
    name = f"resume-{trials}-{rate:g}"
    db = work / "mlflow.db"
    sweep = write_sweep(work / "sweep", name, trials, reports, rate, cpu, f"sqlite:///{db}",
                        more="checkpoint_interval_s: 1  # checkpoints mid-trial, so a resumed trial restores one\n")
    expected = trials * reports
    start = time.perf_counter()
    driver = _cli("run", str(sweep), cwd=work, log=work / "run.log")
    try:
        while logged_values(db) < kill_at * expected:
            if driver.poll() is not None:
                raise RuntimeError(f"the sweep ended before --kill-at was reached; see {work / 'run.log'}")
            if time.perf_counter() - start > 1800:
                raise RuntimeError("--kill-at not reached within 30 min")
            time.sleep(0.2)
    finally:
        _kill(driver)
    killed_after = time.perf_counter() - start
    at_kill = logged_values(db)
    (results,) = list((work / "sweep" / "results").iterdir())
    start = time.perf_counter()
    resume = _cli("resume", str(results), cwd=work, log=work / "resume.log")
    try:
        code = resume.wait(timeout=1800)
    finally:
        _kill(resume)
    if code != 0:
        raise RuntimeError(f"resume failed ({code}): {(work / 'resume.log').read_text()[-3000:]}")
    resume_s = time.perf_counter() - start

    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    experiment = client.get_experiment_by_name(name).experiment_id
    trashed = client.search_runs([experiment], run_view_type=ViewType.DELETED_ONLY, max_results=5000)
    parents = [r for r in client.search_runs([experiment], max_results=5000) if "ray.trial_id" not in r.data.tags]
    return {
        "trials": trials, "rate": rate, "reports": reports, "kill_at": kill_at,
        "killed_after_s": killed_after, "values_at_kill": at_kill, "resume_s": resume_s,
        "runs_in_trash": len(trashed), "parent_runs": len(parents),
        **count_logged(f"sqlite:///{db}", name, trials, reports),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--rate", type=float, default=20.0, help="reports per second per trial")
    parser.add_argument("--reports", type=int, default=200)
    parser.add_argument("--kill-at", type=float, default=0.5,
                        help="SIGKILL once MLflow holds this share of the reports")
    parser.add_argument("--cpu", type=float, default=0.01, help="CPUs per trial (Ray's accounting only)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "resume_count.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        row = run(args.trials, args.rate, args.reports, args.kill_at, args.cpu, Path(scratch))
    print(json.dumps(row, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": "python benchmarks/resume_count.py" + "".join(
            f" --{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "date": time.strftime("%Y-%m-%d %H:%M"), "load_average_at_end": os.getloadavg(), **row,
    }, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
