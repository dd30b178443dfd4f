"""What every test shares: nothing it does may land in the user's working directory or
home (an MLflow store, results, caches), and a failing test says which one wrote there."""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis.configuration import set_hypothesis_home_dir
from sqlalchemy import event
from sqlalchemy.engine import Engine

# Hypothesis keeps its example database in ./.hypothesis, created while test modules are
# collected: point it at a temporary folder before that (the OS cleans /tmp).
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="collapsetune-hypothesis-"))


@event.listens_for(Engine, "connect")
def _sqlite_without_fsync(connection, _record):
    """SQLite stores opened in the test process (MLflow's, Optuna's) skip fsync. A new MLflow
    store runs MLflow's schema migrations, each a commit: on a busy 2-core machine that took
    7-11 s a store with fsync and 1.5-4 s without, and dozens of tests make one. What a test
    reads back is the same (fsync guards against the machine crashing); stores opened by
    other processes (the e2e drivers, `collapsetune` subprocesses) keep SQLite's default."""
    if isinstance(connection, sqlite3.Connection):
        connection.execute("PRAGMA synchronous=OFF")


ROOT = Path(__file__).resolve().parents[1]
START = Path.cwd()
# What a sweep or a tracking client leaves where it runs when a test forgets its tmp_path.
_USER_DATA = ("mlflow.db", "mlruns", "mlartifacts", "results", "ray_results", "optuna.db", ".hypothesis")


@pytest.fixture(autouse=True, scope="session")
def _cache_in_a_temporary_folder(tmp_path_factory):
    """Data and tokenizer caches go to the test session's temporary folder, not ~/.cache
    (a test may still point COLLAPSETUNE_CACHE at its own tmp_path)."""
    before = os.environ.get("COLLAPSETUNE_CACHE")
    os.environ["COLLAPSETUNE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        os.environ.pop("COLLAPSETUNE_CACHE", None)
    else:
        os.environ["COLLAPSETUNE_CACHE"] = before


@pytest.fixture(autouse=True)
def _nothing_written_where_the_user_works(request):
    places = {ROOT, START}
    before = {place: set(os.listdir(place)) for place in places}
    yield
    for place in places:
        left = sorted(n for n in set(os.listdir(place)) - before[place] if n in _USER_DATA or n.endswith(".db"))
        assert not left, f"{request.node.nodeid} wrote {left} into {place}; tests write under tmp_path"


@pytest.fixture(autouse=True, scope="session")
def _fresh_mlflow_schema(tmp_path_factory):
    """Where the session keeps one fresh MLflow schema (see `_mlflow_schema_built_once`);
    MLflow's own `_initialize_tables` is put back at the session's end."""
    state = {"template": tmp_path_factory.mktemp("mlflow-schema") / "fresh.db", "build": None}
    yield state
    if state["build"] is not None:
        sys.modules["mlflow.store.db.utils"]._initialize_tables = state["build"]


@pytest.fixture(autouse=True)
def _mlflow_schema_built_once(_fresh_mlflow_schema):
    """A new MLflow SQLite store opened in the test process gets its tables as a copy of the
    first store's fresh schema instead of running MLflow's ~40 schema migrations again: those
    cost ~1 s of CPU per store (3-4 s on the busy machine), and dozens of tests make a store
    each (test_tracking.py with two neighbours: 22 s of CPU before, 9 s after). The copy is what MLflow's own
    `_initialize_tables` built, so every store is still a real MLflow store (MLflow verifies
    its schema revision right after, and tests/test_conftest.py compares the two); stores
    opened by other processes, and non-SQLite stores, run the migrations as before. Set up
    once MLflow's store module is imported (by an earlier test), so a run of tests that never
    touch MLflow does not import it."""
    utils = sys.modules.get("mlflow.store.db.utils")
    if utils is not None and _fresh_mlflow_schema["build"] is None:
        _fresh_mlflow_schema["build"] = utils._initialize_tables
        utils._initialize_tables = _copying_fresh_schema(utils._initialize_tables, _fresh_mlflow_schema["template"])
    yield


def _copying_fresh_schema(build, template: Path):
    """MLflow's `_initialize_tables` for SQLite: `build` runs once, into `template`; every
    store then gets a copy of it (SQLite's backup API, into the store's own connection)."""
    lock = threading.Lock()

    def initialize(engine) -> None:
        if engine.dialect.name != "sqlite":
            build(engine)
            return
        with lock:  # a tracking writer thread may open a store beside the test's own
            if not template.exists():
                from sqlalchemy import create_engine

                maker = create_engine(f"sqlite:///{template}")
                try:
                    build(maker)
                finally:
                    maker.dispose()
        source, target = sqlite3.connect(template), engine.raw_connection()
        try:
            source.backup(target.driver_connection)
        finally:
            target.close()
            source.close()

    return initialize
