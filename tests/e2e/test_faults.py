"""Run-time faults that must not lose, hide or leak data (issue 16), each on a real
embedded Ray through the CLI: a worker killed for memory, a step that never returns, metric
names MLflow refuses, a truncated experiment snapshot, Ctrl-C, and two drivers at once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.entities import ViewType
from toy_sweep import cli, interrupt_when, results, sqlite_values, trial_runs, write_sweep

from collapsetune.storage import driver_lock, new_folder
from collapsetune.errors import SpecError


def _memory() -> tuple[int, int]:
    """(used, total) bytes of this machine's memory, as Ray's memory monitor counts them."""
    info = dict(line.split(":") for line in Path("/proc/meminfo").read_text().splitlines())
    kb = {k: int(v.split()[0]) * 1024 for k, v in info.items()}
    return kb["MemTotal"] - kb["MemAvailable"], kb["MemTotal"]


@pytest.mark.slow
def test_oom_kill_hang_and_bad_metric_names_fail_one_trial_each_and_lose_nothing(tmp_path):
    used, total = _memory()
    hog = 4 * 2**30
    if total - used < 2 * hog:
        pytest.skip(f"needs {2 * hog / 2**30:.0f} GB free memory to provoke Ray's memory monitor safely")
    threshold = (used + hog / 2) / total  # crossed by the hog alone, not by Ray's own processes
    marker = tmp_path / "hogged"
    # report_timeout_s also bounds the hogging trial's step 2: Ray's memory monitor must kill it
    # within that, after it has touched hog/2 of memory (about 1 s for 2 GB on a busy 2-core
    # machine; 4 s left little over for a slower one, and a timeout there fails the trial
    # instead of the kill this test is about). 10 s, at the cost of the hung trial's three
    # timeouts taking 30 s.
    write_sweep(tmp_path, "faults", "faulty_wrapper:Faulty",
                config=f"{{sleep: 0.2, hog_gb: {hog / 2**30}, hog_marker: '{marker}'}}",
                max_iterations="5", num_samples="4", max_failures="2", report_timeout_s="10",
                search="{algorithm: random, seed: 0, points_to_evaluate: "
                       "[{lr: 0.2}, {lr: 0.001}, {lr: 0.01}, {lr: 0.05}]}")
    env = {**os.environ, "RAY_memory_usage_threshold": f"{threshold:.4f}", "RAY_memory_monitor_refresh_ms": "100"}
    out = cli("run", "sweeps/faults.yaml", cwd=tmp_path, env=env)
    log = out.stdout[-4000:] + out.stderr[-4000:]
    assert out.returncode == 1, log  # one trial failed for good: the run says so
    assert marker.exists() and "killed due to the node running low on memory" in out.stdout + out.stderr, log
    assert "1 of 4 trial(s) failed" in out.stderr

    last: dict[str, dict] = {}
    for report in results(tmp_path):
        last[report["trial_id"]] = report
    by_lr = {round(r["config"]["lr"], 3): r for r in last.values()}
    assert by_lr[0.2]["training_iteration"] == 5  # killed for memory, retried, finished
    assert by_lr[0.001]["training_iteration"] == 1  # hung at report 2 every time

    client, runs = trial_runs(tmp_path, "faults")
    assert sorted(r.data.tags["ray.trial_id"] for r in runs) == sorted(last)  # each trial once
    for run in runs:
        trial = last[run.data.tags["ray.trial_id"]]
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "acc_1")]
        assert steps == list(range(1, trial["training_iteration"] + 1)), steps  # every step, once
        assert run.data.tags["collapsetune.renamed.acc_1"] == "acc@1"
    hung = next(r for r in runs if r.data.tags["ray.trial_id"] == by_lr[0.001]["trial_id"])
    assert hung.info.status == "FAILED" and hung.data.tags["collapse.status"] == "error"
    assert "report_timeout_s=10" in hung.data.tags["collapsetune.error"]


@pytest.mark.slow
def test_resume_with_a_truncated_snapshot_stops_and_changes_nothing(tmp_path):
    write_sweep(tmp_path, "truncated", num_samples="2", max_iterations="3", sleep="0")
    assert cli("run", "sweeps/truncated.yaml", cwd=tmp_path).returncode == 0
    (folder,) = (tmp_path / "results").iterdir()
    (state,) = folder.glob("experiment_state-*.json")
    shutil.copy(state, folder / "experiment_state-2000-01-01_00-00-00.json")  # an older intact one
    state.write_text(state.read_text()[:300])  # what a full disk leaves
    client, before = trial_runs(tmp_path, "truncated")

    out = cli("resume", str(folder), cwd=tmp_path)
    assert out.returncode == 2, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"Ray's experiment snapshot {state.name} is unreadable" in out.stderr
    assert "--older-snapshot" in out.stderr and "nothing was changed" in out.stderr
    assert state.read_text() == state.read_text()[:300]
    after = client.search_runs([before[0].info.experiment_id], run_view_type=ViewType.ALL)
    assert sorted((r.info.run_id, r.info.status, r.info.lifecycle_stage) for r in after if r.data.tags.get(
        "ray.trial_id")) == sorted((r.info.run_id, r.info.status, r.info.lifecycle_stage) for r in before)

    out = cli("resume", str(folder), "--older-snapshot", cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (folder / (state.name + ".unreadable")).exists()
    _, again = trial_runs(tmp_path, "truncated")
    assert sorted(r.info.run_id for r in again) == sorted(r.info.run_id for r in before)  # none trashed or new


@pytest.mark.slow
def test_ctrl_c_leaves_a_resumable_sweep_and_says_so(tmp_path):
    write_sweep(tmp_path, "interrupted", num_samples="3", max_iterations="12", sleep="0.5",
                search="{algorithm: random, seed: 0}")
    driver = cli("run", "sweeps/interrupted.yaml", cwd=tmp_path, wait=False)
    # MLflow has the reports at once; result.json lags. Ctrl-C reaches the driver only, as a
    # terminal's would.
    folder, output = interrupt_when(driver, lambda: _reported_twice(tmp_path, "interrupted"), "a trial reporting twice",
                                    tmp_path)
    assert f"collapsetune resume {folder}" in output
    client, runs = trial_runs(tmp_path, "interrupted")
    parent = client.get_run(runs[0].data.tags["mlflow.parentRunId"])
    assert parent.info.status == "KILLED"

    out = cli("resume", str(folder), cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    client, runs = trial_runs(tmp_path, "interrupted")
    assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED"}
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"


def _reported_twice(work: Path, experiment: str) -> bool:
    """Read-only, straight from SQLite: an MLflow client here would race the driver's
    creation of the store's schema."""
    return any(int(step) >= 2 for step in sqlite_values(work / "mlflow.db", "collapsetune.step"))


def test_launches_in_the_same_second_get_their_own_folders(tmp_path):
    assert [Path(new_folder(str(tmp_path), "sweep-20261123-120000")).name for _ in range(3)] == [
        "sweep-20261123-120000", "sweep-20261123-120000-2", "sweep-20261123-120000-3"]


def test_a_second_driver_on_a_folder_is_refused_naming_the_first(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom collapsetune.storage import driver_lock\n"
         f"with driver_lock({str(tmp_path)!r}):\n    print('held', flush=True)\n    time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SpecError, match=f"another collapsetune driver \\(pid {holder.pid} on .*\\) is running"):
            with driver_lock(str(tmp_path)):
                pass
    finally:
        holder.kill()
        holder.wait()
    with driver_lock(str(tmp_path)):  # a dead driver leaves no lock behind
        pass


@pytest.mark.slow  # two driver processes, each making the store
def test_two_drivers_opening_one_new_mlflow_store_take_turns(tmp_path):
    code = ("import sys\nfrom collapsetune.tracking import _connect\n"
            "_connect(sys.argv[1]).create_experiment(sys.argv[2])")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    drivers = [subprocess.Popen([sys.executable, "-c", code, uri, name], stderr=subprocess.PIPE, text=True)
               for name in ("first", "second")]
    for driver in drivers:
        _, err = driver.communicate(timeout=300)
        assert driver.returncode == 0, err[-2000:]
    from mlflow.tracking import MlflowClient

    assert {e.name for e in MlflowClient(uri).search_experiments()} >= {"first", "second"}


def test_nothing_is_resumed_from_a_folder_without_a_snapshot(tmp_path):
    folder = tmp_path / "results" / "x"
    folder.mkdir(parents=True)
    (folder / "sweep.yaml").write_text("name: x\n")
    (folder / "collapsetune.json").write_text(json.dumps({"cwd": str(tmp_path), "base_dir": str(tmp_path),
                                                          "source": "x.yaml"}))
    out = cli("resume", str(folder), cwd=tmp_path)
    assert out.returncode == 2 and "Ray saved no experiment snapshot here" in out.stderr, out.stderr
