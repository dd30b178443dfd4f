"""Small sweeps of the test wrappers in this folder, run through the real CLI in a test's
tmp_path (results, MLflow store and all), and readers for what they leave behind."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

HERE = Path(__file__).parent


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


def sqlite_values(db: Path, tag: str) -> list[str]:
    """Values of a run tag in an MLflow SQLite store, read-only: a test watching a sweep
    must not open the store with MLflow while the driver may still be creating its schema."""
    import sqlite3

    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return [v for (v,) in conn.execute("SELECT value FROM tags WHERE key = ?", (tag,))]
    except sqlite3.Error:  # no tags table yet
        return []
