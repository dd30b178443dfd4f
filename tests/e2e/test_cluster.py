"""Sweeps on a real multi-node Ray cluster started by the test (a head and worker nodes as
separate raylets on this machine), a worker node killed mid-sweep, a remote MLflow
tracking server, and a resource request no node can meet."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from ray.cluster_utils import Cluster
from toy_sweep import write_sweep

from collapsetune.names import REPORTS_FILE

HERE = Path(__file__).parent


def _sweep(work: Path, name: str, **extra: str) -> Path:
    (work / "sweeps").mkdir(exist_ok=True)
    shutil.copy(HERE / "outside_wrapper.py", work / "sweeps" / "outside_wrapper.py")
    lines = [
        f"name: {name}",
        "trainable: outside_wrapper:Toy",
        f"config: {{sleep: {extra.pop('sleep', '0.3')}}}",
        "search_space: {lr: {loguniform: [0.001, 0.3]}}",
        "objective: {metric: val/loss, mode: min}",
        f"max_iterations: {extra.pop('max_iterations', '6')}",
        f"num_samples: {extra.pop('num_samples', '4')}",
        "search: {algorithm: random, seed: 0, points_to_evaluate: [{lr: 0.2}]}",
        "scheduler: {type: fifo}",
        "collapse: [{metric: collapse/unique_tokens, below: 20, patience: 2, grace: 1}]",
        "resources: {cpu: 1}",
        *(f"{k}: {v}" for k, v in extra.items()),
    ]
    path = work / "sweeps" / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _cli(*args: str, cwd: Path, wait: bool = True, **kw):
    cmd = [sys.executable, "-m", "collapsetune.cli", *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, **kw)


def _records(work: Path) -> list[dict]:
    """Every report of every trial so far, from collapsetune's record in each trial's folder
    (appended and flushed per report by the driver; a line still being written is skipped)."""
    return [json.loads(line) for f in sorted(work.glob(f"results/*/*/{REPORTS_FILE}"))
            for line in f.read_text().split("\n")[:-1] if line.strip()]


def _results(work: Path) -> list[dict]:
    """Every report of every trial, from Ray's result.json files."""
    return [json.loads(line) for f in sorted(work.glob("results/*/*/result.json"))
            for line in f.read_text().splitlines() if line.strip()]


@pytest.fixture
def cluster():
    # Two raylets with one CPU each: trials can only run in parallel by using both nodes.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()  # stops exactly the processes this fixture started


@pytest.mark.slow
def test_sweep_on_cluster_runs_trials_on_more_than_one_node(cluster, tmp_path):
    # The wrapper imports a module and a package beside it: both must reach the other node.
    write_sweep(tmp_path, "on-cluster", "helped_wrapper:Helped", beside=("outside_wrapper.py", "toy_helpers"))
    out = _cli("run", "sweeps/on-cluster.yaml", "--address", cluster.address, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    reports = _results(tmp_path)
    nodes = {r["node_id"] for r in reports}
    assert len(nodes) == 2, f"trials ran on {nodes}"
    print(f"trials ran on nodes {sorted(nodes)}")  # shown with pytest -s
    assert len({r["trial_id"] for r in reports}) == 4
    assert {r["helper/answer"] for r in reports} == {42.0}


@pytest.mark.slow
def test_worker_node_killed_mid_sweep_trials_restart_elsewhere(cluster, tmp_path):
    _sweep(tmp_path, "node-dies", sleep="0.5", max_iterations="10", max_failures="3")
    worker = cluster.list_all_nodes()[1]
    driver = _cli("run", "sweeps/node-dies.yaml", "--address", cluster.address, cwd=tmp_path, wait=False)
    try:
        deadline = time.monotonic() + 240
        # A trial on the worker node that will run on (a healthy one: the Toy's collapsing trial
        # ends at report 3), read from collapsetune's record of reports, written as the driver
        # gets them: Ray's result.json reaches the results folder only with its snapshots (~10 s
        # apart), by when the trial it showed at report 2 may have ended and the node be idle.
        while not any(r["node_id"] == worker.node_id and r["training_iteration"] >= 2
                      and r["collapse/unique_tokens"] >= 20 for r in _records(tmp_path)):
            assert driver.poll() is None, driver.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "no trial reached the worker node"
            time.sleep(0.5)
        cluster.remove_node(worker, allow_graceful=False)  # the node dies mid-trial
        output, _ = driver.communicate(timeout=540)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert driver.returncode == 0, output[-3000:]
    trials: dict[str, dict] = {}
    for r in _results(tmp_path):
        trials[r["trial_id"]] = r  # last report of each trial
    assert len(trials) == 4
    for last in trials.values():  # every trial accounted for: finished or stopped as collapsed
        assert last["done"] or last["collapse.status"] == "collapsed", last
        assert last["training_iteration"] == (3 if last["collapse.status"] == "collapsed" else 10)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("node-dies").experiment_id],
                              filter_string="tags.`ray.trial_id` != ''")
    assert sorted(r.data.tags["ray.trial_id"] for r in runs) == sorted(trials)
    assert {r.info.status for r in runs} == {"FINISHED"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                assert server.poll() is None, "mlflow server exited"
                assert time.monotonic() < deadline, "mlflow server did not come up in 120 s"
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the workers it started
        server.wait(timeout=30)


@pytest.mark.slow
def test_remote_tracking_server_receives_the_runs_and_never_the_password(mlflow_server, tmp_path):
    _sweep(tmp_path, "remote-mlflow", num_samples="2", max_iterations="4", sleep="0")
    # The server has no auth, so it ignores the credentials; they must still not be stored.
    with_password = mlflow_server.replace("http://", "http://ann:s3cret-pw@")
    out = _cli("run", "sweeps/remote-mlflow.yaml", "--set", f"mlflow.tracking_uri={with_password}",
               cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert not (tmp_path / "mlflow.db").exists()
    client = MlflowClient(tracking_uri=mlflow_server)
    runs = client.search_runs([client.get_experiment_by_name("remote-mlflow").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2 and len(runs) == 3
    collapsed = [r for r in children if r.data.tags["collapse.status"] == "collapsed"]
    assert collapsed and collapsed[0].data.tags["collapse.reason"].endswith("for 2 reports")
    assert "samples.md" in [a.path for a in client.list_artifacts(collapsed[0].info.run_id)]

    assert "s3cret-pw" not in out.stdout + out.stderr
    (results,) = (tmp_path / "results").iterdir()
    leaks = [p for p in results.rglob("*") if p.is_file() and b"s3cret-pw" in p.read_bytes()]
    assert leaks == []  # sweep.yaml, tuner.pkl, experiment state, callback state
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    stored = Path(client.download_artifacts(parent.info.run_id, "sweep.yaml", str(tmp_path)))
    assert "s3cret-pw" not in stored.read_text() and mlflow_server in stored.read_text()


@pytest.mark.slow
def test_unmeetable_resource_request_fails_fast(tmp_path):
    _sweep(tmp_path, "too-big")
    started = time.monotonic()
    out = _cli("run", "sweeps/too-big.yaml", "--set", "resources.gpu=1", cwd=tmp_path)
    assert out.returncode == 2
    assert "resources.gpu: each trial asks for 1.0 GPU, but the largest node has 0.0" in out.stderr
    assert not list(tmp_path.glob("results/*/*/result.json"))  # no trial ever started
    assert time.monotonic() - started < 300  # generous: it must not wait for a node to appear


@pytest.mark.slow
def test_no_address_starts_its_own_ray_even_beside_a_running_cluster(cluster, tmp_path):
    # RAY_ADDRESS (or the address file `ray start` leaves behind) makes a bare ray.init()
    # join that cluster; a sweep with `address: null` must start its own Ray instead.
    _sweep(tmp_path, "embedded", num_samples="2", max_iterations="3", sleep="0")
    env = {**os.environ, "RAY_ADDRESS": cluster.address}
    out = subprocess.run([sys.executable, "-m", "collapsetune.cli", "run", "sweeps/embedded.yaml"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    cluster_nodes = {node.node_id for node in cluster.list_all_nodes()}
    used = {r["node_id"] for r in _results(tmp_path)}
    assert used and not used & cluster_nodes, f"trials ran on the other cluster's nodes {used}"


@pytest.mark.slow
def test_trial_failing_while_it_starts_is_retried_not_left_errored(tmp_path):
    # Tune marks a trial that fails while it takes over a reused actor ERROR at once, its
    # retries unused; CI saw the same for a trial starting on a node that died.
    # collapsetune resumes such trials (launch._retry_stranded).
    marker = tmp_path / "failed-once"
    _sweep(tmp_path, "start-fails", num_samples="2", max_iterations="3", sleep="0",
           max_failures="1", max_concurrent="1")
    sweep = tmp_path / "sweeps" / "start-fails.yaml"
    sweep.write_text(sweep.read_text()
                     .replace("config: {sleep: 0}", f"config: {{sleep: 0, fail_once_at_start: '{marker}'}}")
                     .replace("points_to_evaluate: [{lr: 0.2}]", "points_to_evaluate: [{lr: 0.2}, {lr: 0.01}]"))
    out = _cli("run", "sweeps/start-fails.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert marker.exists()  # the healthy trial did fail once while starting
    trials = {r["trial_id"]: r for r in _results(tmp_path)}
    assert sorted(r["collapse.status"] for r in trials.values()) == ["collapsed", "healthy"]
    healthy = next(r for r in trials.values() if r["collapse.status"] == "healthy")
    assert healthy["training_iteration"] == 3
    assert "2 trials: 1 healthy, 1 collapsed\n" in out.stdout


@pytest.mark.slow
def test_trials_errored_with_retries_left_are_resumed(tmp_path, monkeypatch):
    # The state a node death can leave (seen in CI): a trial ERROR after 1 failure while
    # max_failures is 2, because Tune only retries RUNNING trials. Written into Ray's own
    # experiment state here, since the race cannot be forced on demand.
    import ray

    from collapsetune.launch import _retry_stranded
    from collapsetune.spec import load_sweep

    _sweep(tmp_path, "stranded", num_samples="2", max_iterations="3", sleep="0", max_failures="2")
    out = _cli("run", "sweeps/stranded.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (results,) = list((tmp_path / "results").iterdir())
    (state_file,) = list(results.glob("experiment_state-*.json"))
    state = json.loads(state_file.read_text())
    trial, meta = (json.loads(part) for part in state["trial_data"][1])
    trial["status"], meta["num_failures"] = "ERROR", 1
    state["trial_data"][1] = [json.dumps(trial), json.dumps(meta)]
    state_file.write_text(json.dumps(state))

    monkeypatch.chdir(tmp_path)  # the sweep's relative MLflow store is the launch directory's
    spec = load_sweep(tmp_path / "sweeps" / "stranded.yaml")
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    try:
        _retry_stranded(spec, str(results))
    finally:
        ray.shutdown()  # the Ray this test started
    from ray.tune import ExperimentAnalysis

    statuses = {t.trial_id: t.status for t in ExperimentAnalysis(str(results)).trials}
    assert statuses[trial["trial_id"]] == "TERMINATED" and set(statuses.values()) == {"TERMINATED"}
