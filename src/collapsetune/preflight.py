"""Checks that need the outside world, made at launch before Ray starts, each within seconds.

`load_sweep` checks the form of every key without I/O. What only the world can answer is
checked here: the results folder can be written, the MLflow tracking store answers, the
Ray cluster answers. Without these a bad value surfaces minutes later, as a trial PENDING
for ever, a cluster retried for minutes, or ten tracebacks from the first result.

Example:
    >>> from collapsetune.preflight import check
    >>> check(load_sweep("sweeps/smoke.yaml"), timeout=3.0)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pyarrow.fs

from collapsetune.errors import SpecError, raise_all
from collapsetune.spec import SweepSpec
from collapsetune.spec._places import DATABASES, host_port, is_uri, ray_host_port, redact, uri_scheme
from collapsetune.storage import location

__all__ = ["TIMEOUT", "check", "check_address", "check_storage", "check_tracking"]

TIMEOUT = 5.0  # seconds each check may take; a reachable store or cluster answers in well under 1 s
_HOSTED = ("databricks", "databricks-uc", "uc")  # tracking stores reached through their own SDK


def check(spec: SweepSpec, *, timeout: float = TIMEOUT) -> None:
    """Checks storage, the MLflow tracking store and the Ray address together.

    Args:
        spec: A loaded sweep.
        timeout: Seconds each check may take; the three run side by side.

    Raises:
        SpecError: naming the sweep file, the key (`storage`, `mlflow.tracking_uri`,
            `address`) and what was expected; SpecErrors when several fail.
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0, got {timeout}")
    checks = [("storage", check_storage, spec.storage),
              ("mlflow.tracking_uri", check_tracking, spec.mlflow.tracking_uri),
              ("address", check_address, spec.address)]
    results: list[SpecError | None] = [None] * len(checks)

    def run(i: int, key: str, fn: Callable[[Any, float], None], value: Any) -> None:
        try:
            fn(value, timeout)
        except SpecError as exc:
            results[i] = exc
        except Exception as exc:  # noqa: BLE001 - a check that broke must not pass silently
            results[i] = SpecError(f"could not be checked: {_why(exc)}", key=key)

    threads = [threading.Thread(target=run, args=(i, *c), daemon=True) for i, c in enumerate(checks)]
    for thread in threads:
        thread.start()
    for thread in threads:  # each check bounds itself by `timeout`; the margin is for slow start-up
        thread.join(timeout + 5)
    file = str(spec.source) if spec.source else None
    raise_all(err.in_file(file) if file else err for err in results if err is not None)


def check_storage(storage: str, timeout: float = TIMEOUT) -> None:
    """A local folder (or file:// URI) can be written; another URI's filesystem answers.

    A local folder that does not exist yet is not created: its nearest existing parent must
    be a folder that takes a probe file, which is created and removed.

    Raises:
        SpecError: keyed `storage`.
    """
    where = location(storage)
    if is_uri(where) and not where.startswith("file://"):
        _within(timeout, "storage", f"the filesystem of {redact(where)}", lambda: _remote_folder(where))
    else:
        folder = Path(where.removeprefix("file://"))
        _within(timeout, "storage", f"the folder {folder}", lambda: _local_folder(folder),
                "; expected a folder you can write, e.g. results or ~/collapsetune-results")


def check_tracking(uri: str | None, timeout: float = TIMEOUT) -> None:
    """The MLflow tracking store answers: a sqlite file's folder can be written, a server
    accepts a TCP connection and answers its /health, a database host accepts a connection.

    Raises:
        SpecError: keyed `mlflow.tracking_uri`; credentials in the URI are never shown.
    """
    if uri is None:
        return
    key = "mlflow.tracking_uri"
    scheme = uri_scheme(uri)
    base = scheme.split("+", 1)[0]
    if uri in _HOSTED or base in _HOSTED:
        return  # databricks, uc: MLflow's own client and credentials decide; nothing cheap to ask first
    if base == "sqlite":
        path = Path(uri[len("sqlite:///"):].split("?", 1)[0])
        _within(timeout, key, f"the SQLite file {path}", lambda: _sqlite_file(path))
        _mlflow_schema(path, key)
    elif base in ("http", "https"):
        port = host_port(uri)[1]
        _within(timeout, key, redact(uri), lambda: _mlflow_server(uri, timeout),
                f"; start it (mlflow server --port {port}) or log to a file: sqlite:///mlflow.db")
    elif base in DATABASES:
        host, port = host_port(uri)
        _within(timeout, key, f"{host}:{port}", lambda: _connect(host, port, timeout),
                "; start the database or log to a file: sqlite:///mlflow.db")
    elif scheme in ("", "file"):
        folder = Path(urlsplit(uri).path if scheme else uri).absolute()
        _within(timeout, key, f"the folder {folder}", lambda: _local_folder(folder),
                "; expected a folder you can write, or sqlite:///mlflow.db")


def check_address(address: str | None, timeout: float = TIMEOUT) -> None:
    """The Ray cluster at `address` accepts a TCP connection and takes this driver (with the
    token it asks for, `_check_token`); "auto" finds one as Ray does.

    Raises:
        SpecError: keyed `address`.
    """
    if address in (None, "local"):
        return  # collapsetune starts a private local Ray
    if address == "auto":
        address = _auto_address()
    try:
        host, port = ray_host_port(address)
    except ValueError as exc:  # the spec checked its own value: this one came from RAY_ADDRESS
        raise SpecError(f"{exc} (from RAY_ADDRESS); expected host:port or ray://host:port", key="address") from None
    start = "the Ray client server" if address.startswith("ray://") else f"ray start --head --port {port}"
    # The probe bounds itself by `timeout` and says why; the second more lets it say so.
    _within(timeout + 1, "address", f"the Ray cluster at {address}", lambda: _grpc_server(host, port, timeout),
            f"; start it ({start}) or set address: null for a private local Ray")
    if not address.startswith("ray://"):
        _check_token(address, host, port, timeout)


def _check_token(address: str, host: str, port: int, timeout: float) -> None:
    """The cluster takes this driver: `ray start --head` turns token authentication on when
    it finds a token, and a driver without it is refused at `ray.init`, after 20 s of
    retries, with a traceback. The driver's RAY_AUTH_MODE is set here to what the cluster
    takes, as ray_session would set it."""
    from collapsetune._ray import fixes

    if fixes.use_cluster_token(f"{host}:{port}", timeout) is not False:
        return
    mode = os.environ.get("RAY_AUTH_MODE", "token")
    if mode.lower() != "token":
        raise SpecError(f"the Ray cluster at {address} asks for its token, but RAY_AUTH_MODE={mode!r} here; "
                        "set RAY_AUTH_MODE=token", key="address")
    fix = ("copy the cluster's token (`ray get-auth-token` on its head node) to ~/.ray/auth_token here, "
           "or set RAY_AUTH_TOKEN")
    source = next((name for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH") if os.environ.get(name)), None)
    if source is None and (Path.home() / ".ray" / "auth_token").is_file():
        source = "~/.ray/auth_token"
    if source is None:
        raise SpecError(f"the Ray cluster at {address} asks for its token and none was found; {fix}", key="address")
    raise SpecError(f"the Ray cluster at {address} refused the token from {source}; {fix}", key="address")


def _within(timeout: float, key: str, what: str, probe: Callable[[], None], hint: str = "") -> None:
    """Run `probe` in a daemon thread (a hung mount or DNS lookup cannot hold the process);
    SpecError keyed `key`, ending with `hint`, when it fails or takes longer than `timeout` s."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            probe()
        except BaseException as exc:  # noqa: BLE001 - reported below as a SpecError
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise SpecError(f"{what} did not answer within {timeout:g} s{hint}", key=key)
    if failure:
        exc = failure[0]
        raise (exc if isinstance(exc, SpecError) and exc.key else SpecError(_why(exc) + hint, key=key)) from None


def _local_folder(folder: Path) -> None:
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        shown = existing or folder
        raise _Problem(f"{shown} is a file, not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".collapsetune-probe-"):
            pass  # created and removed: the folder takes new files
    except OSError as exc:
        raise _Problem(f"cannot write in {existing} ({exc.strerror or exc})") from None


def _remote_folder(uri: str) -> None:
    try:
        fs, path = pyarrow.fs.FileSystem.from_uri(uri)
        info = fs.get_file_info(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError and others
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _Problem(f"cannot open {redact(uri)}: {first}") from None
    if info.type == pyarrow.fs.FileType.File:
        raise _Problem(f"{redact(uri)} is a file, not a folder")


def _sqlite_file(path: Path) -> None:
    folder = path.absolute().parent
    if not folder.is_dir():
        raise _Problem(f"the folder {folder} of the SQLite file does not exist; create it, or use "
                       "sqlite:///mlflow.db (in the launch folder)")
    if path.exists() and not (path.is_file() and os.access(path, os.R_OK | os.W_OK)):
        raise _Problem(f"{path.absolute()} is not a SQLite file this user can read and write")
    try:
        _local_folder(folder)
    except _Problem as exc:
        raise _Problem(f"{exc}; SQLite writes the database and its journal there") from None
    if path.exists():
        _sqlite_database(path.absolute())


def _mlflow_schema(path: Path, key: str) -> None:
    """An MLflow store in SQLite is one this MLflow opens: a store of an older (or newer)
    MLflow raises its schema error in the driver's first MLflow call, once trials have
    started. MLflow itself judges (its client, which only reads a store whose schema is
    complete); outside `_within`, as importing MLflow alone may take longer than its timeout."""
    if not path.is_file():
        return
    try:
        with _reading(path) as db:
            if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'").fetchone():
                return  # empty, or a store MLflow has yet to make its schema in: MLflow makes it
    except sqlite3.Error:
        return  # _sqlite_database has said what is wrong with it
    from collapsetune.tracking._store import store_problem

    uri = f"sqlite:///{path.absolute()}"
    problem = store_problem(uri)
    if problem is None:
        return
    why, version = problem
    if why == "schema":
        raise SpecError(f"{path.absolute()} holds another MLflow version's schema (this is MLflow "
                        f"{version}); back it up, then run `mlflow db upgrade {uri}`, or point "
                        "tracking_uri at a new file, e.g. sqlite:///mlflow.db", key=key)
    raise SpecError(f"{path.absolute()} is a SQLite file MLflow cannot open ({why}); point "
                    "tracking_uri at MLflow's database or at a new file, e.g. sqlite:///mlflow.db", key=key)


def _reading(path: Path) -> contextlib.closing[sqlite3.Connection]:
    """A connection for preflight's reads of a SQLite store: read-only, unless a process
    killed inside a write (a driver SIGKILLed mid-MLflow-call) left its rollback journal
    beside the file. Only a connection that may write can roll that half-done write back,
    as MLflow's own first connection does; a read-only one fails with "attempt to write a
    readonly database" and would turn away the `resume` meant for exactly that driver."""
    mode = "rw" if Path(f"{path}-journal").exists() else "ro"
    return contextlib.closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode={mode}", uri=True, timeout=1))


def _sqlite_database(path: Path) -> None:
    """An existing file is a SQLite database that is empty or MLflow's: MLflow would fail on
    anything else with a traceback, or add its tables to another tool's database."""
    try:
        with _reading(path) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as exc:
        raise _Problem(f"{path} is not a SQLite database this user can open ({exc}); point tracking_uri at "
                       "MLflow's database or at a new file, e.g. sqlite:///mlflow.db") from None
    if tables and "experiments" not in tables:
        raise _Problem(f"{path} is another tool's SQLite database (it has no MLflow experiments table); point "
                       "tracking_uri at MLflow's database or at a new file, e.g. sqlite:///mlflow.db")


def _mlflow_server(uri: str, timeout: float) -> None:
    parts = urlsplit(uri)
    host, port = host_port(uri)
    url = urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path.rstrip("/") + "/health", "", ""))
    if urllib.request.proxy_bypass(host) or not urllib.request.getproxies().get(parts.scheme):
        _connect(host, port, timeout)  # behind a proxy (as MLflow's client will be) only the GET tells
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:  # noqa: S310 - http(s) only
            reply.read(64)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise _Problem(f"{redact(uri)} answers, but has no /health: is it an MLflow tracking server "
                           "(mlflow server)?") from None
        if exc.code >= 500:
            raise _Problem(f"the MLflow server at {redact(uri)} answers HTTP {exc.code} on /health") from None
        # 401/403: the server is there; MLflow's client sends the credentials (MLFLOW_TRACKING_TOKEN, ...)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Problem(f"no answer from the MLflow server at {redact(uri)} ({_why(reason)})") from None
    else:
        _mlflow_api(urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path.rstrip("/")
                                + _API_PROBE, "", "")), uri, timeout)


# Any web server may answer /health; MLflow's REST API answers this GET in JSON (200 when the
# experiment exists, 404 RESOURCE_DOES_NOT_EXIST when not).
_API_PROBE = "/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default"


def _mlflow_api(url: str, uri: str, timeout: float) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:  # noqa: S310 - http(s) only
            body, code = reply.read(4096), reply.status
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            return  # there, but wants credentials: MLflow's client sends them
        body, code = exc.read(4096), exc.code
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Problem(f"no answer from the MLflow server at {redact(uri)} ({_why(reason)})") from None
    try:
        is_mlflow = code in (200, 404) and isinstance(json.loads(body), dict)
    except ValueError:
        is_mlflow = False
    if not is_mlflow:
        raise _Problem(f"{redact(uri)} answers /health, but not MLflow's REST API (GET /api/2.0/mlflow/experiments/"
                       f"get-by-name gave HTTP {code}, not MLflow's JSON): is it an MLflow tracking server "
                       "(mlflow server)?")


def _connect(host: str, port: int, timeout: float) -> None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except socket.gaierror:
        raise _Problem(f"cannot resolve the host {host!r}") from None
    except ConnectionRefusedError:
        raise _Problem(f"nothing listens on {host}:{port} (connection refused)") from None
    except TimeoutError:
        raise _Problem(f"no answer from {host}:{port} within {timeout:g} s") from None
    except OSError as exc:
        raise _Problem(f"cannot connect to {host}:{port} ({exc.strerror or exc})") from None


# An HTTP/2 client's preface and an empty SETTINGS frame: a gRPC server (Ray's GCS and its
# client server both are) answers with its own SETTINGS frame at once, before any auth.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_SETTINGS = 4  # the frame type, byte 3 of a frame header


def _grpc_server(host: str, port: int, timeout: float) -> None:
    """Something at host:port speaks gRPC: a port that only accepts (a silent listener) or
    answers HTTP/1 (a web server, the Ray dashboard) would hold `ray.init` for minutes."""
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        _connect(host, port, timeout)  # TLS first: a plaintext greeting would not be answered
        return
    deadline = time.monotonic() + timeout
    _connect(host, port, timeout)  # refused / unresolvable / unreachable, worded
    try:
        with socket.create_connection((host, port), timeout=max(deadline - time.monotonic(), 0.1)) as conn:
            conn.sendall(_HTTP2_PREFACE)
            head = b""
            while len(head) < 9:
                conn.settimeout(max(deadline - time.monotonic(), 0.01))
                chunk = conn.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
    except TimeoutError:
        raise _Problem(f"{host}:{port} accepts connections but did not answer within {timeout:g} s: it is not a "
                       "Ray cluster's address (the GCS port `ray start --head` prints, 6379 by default)") from None
    except OSError as exc:
        raise _Problem(f"{host}:{port} dropped the connection ({exc.strerror or exc}): it is not a Ray "
                       "cluster's address (the GCS port `ray start --head` prints, 6379 by default)") from None
    if head.startswith((b"HTTP/", b"<")):  # a status line, or (Python's http.server) an HTML error page
        raise _Problem(f"{host}:{port} is a web server (it answers HTTP/1, as the Ray dashboard on 8265 does), "
                       "not a Ray cluster's address (the GCS port `ray start --head` prints, 6379 by default)")
    if len(head) < 9 or head[3] != _SETTINGS:
        raise _Problem(f"{host}:{port} answers, but not as Ray does (gRPC): it is not a Ray cluster's address "
                       "(the GCS port `ray start --head` prints, 6379 by default)")


def _auto_address() -> str:
    """The cluster `address: auto` joins: RAY_ADDRESS, else the one `ray start` left on this
    machine."""
    if os.environ.get("RAY_ADDRESS", "auto") != "auto":
        return os.environ["RAY_ADDRESS"]
    from collapsetune._ray import ray_address

    try:
        found = ray_address("auto")
    except (ConnectionError, ValueError) as exc:
        raise SpecError(f"auto finds no running Ray cluster ({exc}); start one with `ray start --head`, "
                        "or give host:port, or null for a private local Ray", key="address") from None
    if not found:
        raise SpecError("auto finds no running Ray cluster on this machine; start one with `ray start --head`, "
                        "or give host:port, or null for a private local Ray", key="address")
    return found


class _Problem(Exception):
    """A probe's finding, worded for the user; _within turns it into a SpecError with the key."""


def _why(exc: BaseException) -> str:
    if isinstance(exc, _Problem):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
