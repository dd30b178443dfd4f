"""Launch-time checks of storage, the MLflow store and the Ray address: loopback only, each
bounded by a timeout of about a second, so a dead address fails fast and no test can hang."""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from collapsetune import preflight
from collapsetune.errors import SpecError, SpecErrors
from collapsetune.spec import Objective, SweepSpec

TIMEOUT = 1.0


def free_port() -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def silent_listener() -> Iterator[int]:
    """A loopback port that accepts connections and never says a word."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


@contextmanager
def http_server(status: int) -> Iterator[int]:
    """A loopback HTTP server answering every GET with `status`."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def error(check, value) -> SpecError:
    with pytest.raises(SpecError) as info:
        check(value, TIMEOUT)
    return info.value


# --- storage ---------------------------------------------------------------------------------


def test_storage_writable_folder_passes_and_leaves_nothing(tmp_path):
    preflight.check_storage(str(tmp_path), TIMEOUT)
    preflight.check_storage(str(tmp_path / "not" / "yet"), TIMEOUT)  # made by the launch, not here
    preflight.check_storage(f"file://{tmp_path}/results", TIMEOUT)
    assert list(tmp_path.iterdir()) == []


def test_storage_under_home_is_probed_in_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "home").write_text("a file where the home folder should be")
    err = error(preflight.check_storage, "~/results")
    assert err.key == "storage" and f"{tmp_path / 'home'} is a file, not a folder" in err.message


@pytest.mark.parametrize("below", ["", "sub/folder"])
def test_storage_that_is_a_file_fails(tmp_path, below):
    (tmp_path / "results").write_text("x")
    err = error(preflight.check_storage, str(tmp_path / "results" / below))
    assert err.key == "storage"
    assert f"{tmp_path / 'results'} is a file, not a folder; expected a folder you can write" in err.message


def test_storage_in_a_read_only_folder_fails(tmp_path):
    """A folder this user cannot write: mode 0555, or, for root (who writes through modes), a
    read-only tmpfs mounted there."""
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    if root:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)],
                                 capture_output=True, text=True)
        if mounted.returncode != 0:
            pytest.skip(f"root writes through modes, and no read-only tmpfs could be mounted: {mounted.stderr.strip()}")
    try:
        err = error(preflight.check_storage, str(ro / "results"))
    finally:
        if root:
            subprocess.run(["umount", str(ro)], check=True)
    assert f"cannot write in {ro}" in err.message


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux sysfs, which nobody may write")
def test_storage_on_a_filesystem_nobody_writes_fails():
    err = error(preflight.check_storage, "/sys/collapsetune-results")
    assert err.key == "storage" and "cannot write in /sys (" in err.message and "expected a folder you can write" in err.message


def test_storage_with_an_unknown_scheme_fails():
    err = error(preflight.check_storage, "foo://bucket/results")
    assert err.key == "storage" and "cannot open foo://bucket/results" in err.message


# --- MLflow tracking store -------------------------------------------------------------------


def test_tracking_sqlite_needs_an_existing_writable_folder(tmp_path):
    preflight.check_tracking(f"sqlite:///{tmp_path}/mlflow.db", TIMEOUT)
    err = error(preflight.check_tracking, f"sqlite:///{tmp_path}/missing/mlflow.db")
    assert err.key == "mlflow.tracking_uri" and f"the folder {tmp_path / 'missing'} of the SQLite file does not exist" in err.message
    (tmp_path / "dir.db").mkdir()
    assert "is not a SQLite file" in error(preflight.check_tracking, f"sqlite:///{tmp_path}/dir.db").message


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux sysfs, which nobody may write")
def test_tracking_sqlite_in_a_folder_nobody_writes_fails():
    err = error(preflight.check_tracking, "sqlite:////sys/mlflow.db")
    assert err.key == "mlflow.tracking_uri" and "cannot write in /sys (" in err.message, err.message


@pytest.mark.parametrize(("content", "says"), [
    (bytes(range(256)) * 16, "is not a SQLite database this user can open (file is not a database)"),
    (None, "is another tool's SQLite database (it has no MLflow experiments table)"),
], ids=["random-bytes", "another-tools-database"])
def test_tracking_sqlite_file_that_is_not_mlflows_database_fails(tmp_path, content, says):
    path = tmp_path / "m.db"
    if content is None:
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("CREATE TABLE trials (id INTEGER)")
    else:
        path.write_bytes(content)
    err = error(preflight.check_tracking, f"sqlite:///{path}")
    assert err.key == "mlflow.tracking_uri" and f"{path} {says}" in err.message, err.message


def test_tracking_sqlite_empty_or_mlflows_own_passes(tmp_path):
    (tmp_path / "empty.db").write_bytes(b"")
    preflight.check_tracking(f"sqlite:///{tmp_path / 'empty.db'}", TIMEOUT)
    with contextlib.closing(sqlite3.connect(tmp_path / "m.db")) as db:
        db.execute("CREATE TABLE experiments (experiment_id INTEGER)")  # what MLflow's schema starts with
    preflight.check_tracking(f"sqlite:///{tmp_path / 'm.db'}", TIMEOUT)


def _writing(path: Path, rows: int, then: str, before: str = "", **popen) -> subprocess.Popen:
    """A store of `rows` experiments and a second process inside a write to all of them (it
    has printed 'writing' when this returns); `then` is its code after that, `before` runs
    ahead of the write."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE experiments (experiment_id INTEGER)")
        db.executemany("INSERT INTO experiments VALUES (?)", [(i,) for i in range(rows)])
        db.commit()
    code = (f"import sqlite3, sys, time\ndb = sqlite3.connect({str(path)!r}, isolation_level=None, timeout=30)\n"
            f"{before}\ndb.execute('BEGIN IMMEDIATE')\ndb.execute('UPDATE experiments SET experiment_id = -1')\n"
            f"print('writing', flush=True)\n{then}\n")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, **popen)


def test_tracking_sqlite_left_mid_write_by_a_killed_driver_passes(tmp_path):
    """A driver SIGKILLed inside an MLflow write leaves a hot journal beside the store; the
    next `run` or `resume` must open the store (SQLite rolls the half-done write back), not
    call it a database this user cannot open. The committed rows stay."""
    path = tmp_path / "mlflow.db"
    # cache_size=1: the write spills to the file, so the journal is hot once the writer dies
    writer = _writing(path, 5000, "time.sleep(120)", before="db.execute('PRAGMA cache_size=1')")
    try:
        assert writer.stdout.readline().strip() == "writing"
    finally:
        writer.kill()
        writer.wait()
    assert Path(f"{path}-journal").exists()
    preflight.check_tracking(f"sqlite:///{path}", TIMEOUT)
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT COUNT(*), MIN(experiment_id) FROM experiments").fetchone() == (5000, 0)


def test_tracking_sqlite_beside_a_live_writers_journal_passes_and_leaves_its_write_alone(tmp_path):
    """A journal beside the store may be a *live* writer's (another sweep logging to the same
    store): preflight opens read-write then, but must neither roll that write back nor block
    it. The writer commits after preflight, and its rows are what the store holds."""
    path = tmp_path / "mlflow.db"
    writer = _writing(path, 50, "sys.stdin.readline()\ndb.execute('COMMIT')\nprint('committed', flush=True)",
                      stdin=subprocess.PIPE)
    try:
        assert writer.stdout.readline().strip() == "writing"
        assert Path(f"{path}-journal").exists()
        preflight.check_tracking(f"sqlite:///{path}", TIMEOUT)
        writer.stdin.write("go\n")
        writer.stdin.flush()
        assert writer.stdout.readline().strip() == "committed"
    finally:
        writer.kill()
        writer.wait()
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT COUNT(*), MAX(experiment_id) FROM experiments").fetchone() == (50, -1)


def test_tracking_server_on_a_dead_port_fails_fast():
    port = free_port()
    err = error(preflight.check_tracking, f"http://user:secret@127.0.0.1:{port}")
    assert err.key == "mlflow.tracking_uri"
    assert f"nothing listens on 127.0.0.1:{port} (connection refused); start it (mlflow server --port {port})" in err.message
    assert "secret" not in str(err)


def test_tracking_server_that_never_answers_fails_within_the_timeout():
    with silent_listener() as port:
        err = error(preflight.check_tracking, f"http://127.0.0.1:{port}")
    assert err.key == "mlflow.tracking_uri" and f"127.0.0.1:{port}" in err.message
    assert "did not answer within 1 s" in err.message or "timed out" in err.message


def test_tracking_server_wanting_credentials_passes():
    with http_server(403) as port:  # there, but wants credentials: MLflow's client brings them
        preflight.check_tracking(f"http://127.0.0.1:{port}", TIMEOUT)


def test_tracking_web_server_answering_health_but_not_mlflow_fails():
    """issue 22: a plain web server that answers 200 everywhere passed, then MLflow's client
    ended the launch with a traceback."""
    with http_server(200) as port:
        err = error(preflight.check_tracking, f"http://127.0.0.1:{port}")
    assert err.key == "mlflow.tracking_uri"
    assert "answers /health, but not MLflow's REST API" in err.message and "(mlflow server)?" in err.message


@pytest.mark.slow
def test_tracking_real_mlflow_server_passes(tmp_path):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(240):  # until it answers /health (or exits)
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert server.poll() is None, "mlflow server exited"
                time.sleep(0.5)
        preflight.check_tracking(f"http://127.0.0.1:{port}", 5.0)
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the workers it started
        server.wait(timeout=30)


def test_tracking_server_without_health_is_not_mlflow():
    with http_server(404) as port:
        err = error(preflight.check_tracking, f"http://127.0.0.1:{port}")
    assert "has no /health: is it an MLflow tracking server" in err.message


def test_tracking_database_on_a_dead_port_fails():
    port = free_port()
    err = error(preflight.check_tracking, f"postgresql://u:pw@127.0.0.1:{port}/mlflow")
    assert f"nothing listens on 127.0.0.1:{port}" in err.message and "pw" not in str(err)


# --- Ray address -----------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["127.0.0.1:{port}", "ray://127.0.0.1:{port}"])
def test_ray_address_with_nothing_listening_fails_fast(form):
    port = free_port()
    err = error(preflight.check_address, form.format(port=port))
    assert err.key == "address" and f"nothing listens on 127.0.0.1:{port}" in err.message
    assert "or set address: null for a private local Ray" in err.message


@pytest.mark.parametrize("form", ["127.0.0.1:{port}", "ray://127.0.0.1:{port}"])
def test_ray_address_that_accepts_and_never_answers_fails_within_the_timeout(form):
    """issue 22: preflight only connected, and ray.init then failed after 23 s with a traceback."""
    with silent_listener() as port:
        err = error(preflight.check_address, form.format(port=port))
    assert err.key == "address" and "\n" not in err.message
    assert f"127.0.0.1:{port} accepts connections but did not answer within 1 s: it is not a Ray cluster" in err.message


def test_ray_address_of_a_web_server_fails_at_once():
    """issue 22: an HTTP server's port held ray.init for minutes."""
    with http_server(200) as port:
        err = error(preflight.check_address, f"127.0.0.1:{port}")
    assert err.key == "address" and f"127.0.0.1:{port} is a web server (it answers HTTP/1" in err.message


@pytest.mark.slow  # starts a Ray cluster
def test_ray_address_of_a_real_cluster_passes():
    """Against a real Ray's GCS (token auth on, Ray 2.60's default): it answers the gRPC greeting."""
    import ray

    started = not ray.is_initialized()  # another test's Ray in this process serves as well
    if started:
        ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level="ERROR")
    try:
        preflight.check_address(ray.get_runtime_context().gcs_address, 5.0)
    finally:
        if started:
            ray.shutdown()
    preflight.check_address(None, TIMEOUT)


def test_ray_address_auto_follows_ray_address_variable(monkeypatch):
    port = free_port()
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    assert f"nothing listens on 127.0.0.1:{port}" in error(preflight.check_address, "auto").message


# --- all three, as `run` calls them ----------------------------------------------------------


def spec_with(tmp_path: Path, **changes) -> SweepSpec:
    values = {"name": "toy", "trainable": "m:C", "objective": Objective("val/loss", "min"),
              "storage": str(tmp_path / "results"), "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/m.db"},
              "source": tmp_path / "sweep.yaml", **changes}
    return SweepSpec(**values)


def test_check_passes_a_reachable_sweep(tmp_path):
    preflight.check(spec_with(tmp_path), timeout=TIMEOUT)
    preflight.check(spec_with(tmp_path, mlflow={"tracking_uri": None}), timeout=TIMEOUT)


def test_check_reports_every_unreachable_place_with_file_and_key(tmp_path):
    (tmp_path / "results").write_text("x")
    spec = spec_with(tmp_path, address=f"127.0.0.1:{free_port()}",
                     mlflow={"tracking_uri": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(SpecErrors) as info:
        preflight.check(spec, timeout=TIMEOUT)
    assert [e.key for e in info.value.errors] == ["storage", "mlflow.tracking_uri", "address"]
    assert all(e.file == str(tmp_path / "sweep.yaml") for e in info.value.errors)


def test_check_needs_a_positive_timeout(tmp_path):
    with pytest.raises(ValueError, match="timeout must be > 0, got 0"):
        preflight.check(spec_with(tmp_path), timeout=0)


def test_run_stops_before_ray_when_the_tracking_server_is_down(tmp_path, monkeypatch, capsys):
    """`collapsetune run` calls preflight before it starts Ray: exit 2, the key named, no trial."""
    ray = pytest.importorskip("ray")
    from collapsetune.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "clitoy.py").write_text("class Toy:\n    def __init__(self, config):\n        pass\n\n"
                                        "    def step(self):\n        return {'val/loss': 1.0}\n")
    port = free_port()
    (tmp_path / "sweep.yaml").write_text(
        "name: toy\ntrainable: clitoy:Toy\nobjective: {metric: val/loss, mode: min}\n"
        f"mlflow: {{tracking_uri: 'http://127.0.0.1:{port}'}}\n")
    assert main(["run", "sweep.yaml"]) == 2
    err = capsys.readouterr().err
    assert f"sweep.yaml: mlflow.tracking_uri: nothing listens on 127.0.0.1:{port}" in err
    assert not ray.is_initialized() and not (tmp_path / "results").exists()


def test_tracking_hosted_and_local_folder_stores(tmp_path):
    preflight.check_tracking("databricks", TIMEOUT)  # its SDK and credentials decide
    preflight.check_tracking(str(tmp_path / "mlruns"), TIMEOUT)
    preflight.check_tracking(f"file://{tmp_path}/mlruns", TIMEOUT)
    (tmp_path / "file").write_text("x")
    assert "is a file, not a folder" in error(preflight.check_tracking, str(tmp_path / "file" / "mlruns")).message


def test_tracking_sqlite_store_of_an_older_mlflow_fails_naming_the_upgrade(tmp_path):
    # A store an older MLflow made: the driver's MlflowClient would raise MLflow's schema
    # error in a traceback once trials had started (issue 22's hostile pass, round 3).
    path = tmp_path / "m.db"
    subprocess.run([sys.executable, "-c", "import sys; from mlflow.tracking import MlflowClient; "  # today's schema,
                    "MlflowClient(tracking_uri=sys.argv[1]).search_experiments(max_results=1)",  # made elsewhere
                    f"sqlite:///{path}"], check=True, timeout=300)  # (MLflow keeps an opened store per process)
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE alembic_version SET version_num = '867495a8f9d4'")  # MLflow 2.x's schema
    err = error(preflight.check_tracking, f"sqlite:///{path}")
    assert err.key == "mlflow.tracking_uri", err
    assert (f"{path} holds another MLflow version's schema (this is MLflow " in err.message
            and f"back it up, then run `mlflow db upgrade sqlite:///{path}`" in err.message), err.message
    assert "867495a8f9d4" not in err.message and "\n" not in err.message
