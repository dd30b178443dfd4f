"""Small sweeps of the test wrappers in this folder, run through the real CLI in a test's
tmp_path (results, MLflow store and all), and readers for what they leave behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mlflow.tracking import MlflowClient

HERE = Path(__file__).parent
EXAMPLES = HERE.parents[1] / "examples"


def write_sweep(work: Path, name: str, wrapper: str = "outside_wrapper:Toy", beside: tuple[str, ...] = (),
                **keys: str) -> Path:
    """sweeps/<name>.yaml in `work`, beside a copy of the wrapper's module and of the files
    or folders named in `beside`; `keys` are top-level sweep keys (YAML text) over the
    defaults below."""
    (work / "sweeps").mkdir(exist_ok=True)
    module = wrapper.split(":")[0]
    shutil.copy(HERE / f"{module}.py", work / "sweeps" / f"{module}.py")
    for extra in beside:
        source = HERE / extra
        if source.is_dir():
            shutil.copytree(source, work / "sweeps" / extra, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, work / "sweeps" / extra)
    lines = {
        "name": name,
        "trainable": wrapper,
        "config": f"{{sleep: {keys.pop('sleep', '0.3')}}}",
        "search_space": "{lr: {loguniform: [0.001, 0.3]}}",
        "objective": "{metric: val/loss, mode: min}",
        "max_iterations": "6",
        "num_samples": "4",
        "search": "{algorithm: random, seed: 0, points_to_evaluate: [{lr: 0.2}]}",
        "scheduler": "{type: fifo}",
        "collapse": "[{metric: collapse/unique_tokens, below: 20, patience: 2, grace: 1}]",
        "resources": "{cpu: 1}",
    }
    lines.update(keys)
    path = work / "sweeps" / f"{name}.yaml"
    path.write_text("".join(f"{k}: {v}\n" for k, v in lines.items()))
    return path


def copy_example(work: Path, name: str) -> Path:
    """sweeps/<name>.yaml in `work`: an example's sweep beside its module and the model
    module the examples share, as a user would lay them out."""
    (work / "sweeps").mkdir(exist_ok=True)
    for file in (f"{name}.py", "charlm.py", f"{name}.yaml"):
        shutil.copy(EXAMPLES / file, work / "sweeps" / file)
    return work / "sweeps" / f"{name}.yaml"


def cli(*args: str, cwd: Path, wait: bool = True, **kw):
    """`collapsetune ARGS` in its own process group (so a test can signal exactly it)."""
    cmd = [sys.executable, "-m", "collapsetune.cli", *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True, **kw)
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, start_new_session=True, **kw)


def results(work: Path) -> list[dict]:
    """Every report of every trial, from Ray's result.json files."""
    return [json.loads(line) for f in sorted(work.glob("results/*/*/result.json"))
            for line in f.read_text().splitlines() if line.strip()]


def trial_runs(work: Path, experiment: str, uri: str | None = None) -> tuple[MlflowClient, list]:
    """The client and the child (trial) runs of an experiment in work's MLflow store."""
    client = MlflowClient(tracking_uri=uri or f"sqlite:///{work / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    return client, client.search_runs([found.experiment_id], "tags.`ray.trial_id` != ''")


def kill_when(driver: subprocess.Popen, ready: Callable[[], bool], what: str, then_s: float = 0.0,
              timeout_s: float = 300) -> None:
    """SIGKILL the driver (from `cli(wait=False)`) and the Ray it started, `then_s` seconds
    after `ready()`; fails if the sweep ends first."""
    try:
        deadline = time.monotonic() + timeout_s
        while not ready():
            assert driver.poll() is None, f"the sweep ended before {what}:\n" + driver.stdout.read()[-3000:]
            assert time.monotonic() < deadline, f"no {what} within {timeout_s} s"
            time.sleep(0.5)
        time.sleep(then_s)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()


def interrupt_when(driver: subprocess.Popen, ready: Callable[[], bool], what: str, work: Path,
                   timeout_s: float = 300) -> tuple[Path, str]:
    """Ctrl-C the driver (from `cli(wait=False)`) once `ready()`, as a terminal's Ctrl-C reaches
    it; it must exit 130. Returns the sweep's results folder and what the driver printed."""
    try:
        deadline = time.monotonic() + timeout_s
        while not ready():
            assert driver.poll() is None, f"the sweep ended before {what}:\n" + driver.stdout.read()[-3000:]
            assert time.monotonic() < deadline, f"no {what} within {timeout_s} s"
            time.sleep(0.3)
        driver.send_signal(signal.SIGINT)
        output, _ = driver.communicate(timeout=timeout_s)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert driver.returncode == 130, output[-3000:]
    (folder,) = (work / "results").iterdir()
    return folder, output


def assert_each_step_once(client: MlflowClient, runs: list, trials: int, metric: str = "val/loss") -> None:
    """One FINISHED run per trial, each with `metric` at steps 1..n, none twice."""
    assert sorted(r.data.tags["ray.trial_id"] for r in runs) == sorted({r.data.tags["ray.trial_id"] for r in runs})
    assert len(runs) == trials and all(r.info.status == "FINISHED" for r in runs), [r.info.status for r in runs]
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, metric)]
        assert steps == list(range(1, len(steps) + 1)), f"steps missing or twice: {steps}"


def assert_rescued(client: MlflowClient, runs: list, tag: str = "collapsetune.pbt.exploits") -> None:
    """PBT copied into some run, each copy listed once with the lr before and after it, and
    one of them a rescue of a collapsed trial with the donor's report logged."""
    with_copies = [r for r in runs if tag in r.data.tags]
    assert with_copies
    for run in with_copies:
        lines = run.data.tags[tag].splitlines()
        assert len(lines) == len(set(lines)), lines
        history = client.get_metric_history(run.info.run_id, "config/lr")
        assert len({m.value for m in history}) >= 2  # lr over time: before and after the copy
    rescued = [r for r in with_copies if "after collapsed" in r.data.tags[tag]]
    assert rescued, [r.data.tags[tag] for r in with_copies]
    for run in rescued:
        assert client.get_metric_history(run.info.run_id, "pbt/donor_report")


def finished_runs(db: Path) -> int:
    """Trials MLflow has as finished (it learns at once; Ray's result files lag behind),
    read-only so as not to race the driver creating the store."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                                "WHERE t.key = 'ray.trial_id' AND r.status = 'FINISHED'").fetchone()[0]
    except sqlite3.Error:  # no tables yet
        return 0


def sqlite_values(db: Path, tag: str) -> list[str]:
    """Values of a run tag in an MLflow SQLite store, read-only: a test watching a sweep
    must not open the store with MLflow while the driver may still be creating its schema."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return [v for (v,) in conn.execute("SELECT value FROM tags WHERE key = ?", (tag,))]
    except sqlite3.Error:  # no tags table yet
        return []
