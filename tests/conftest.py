"""What every test shares: nothing it does may land in the user's working directory or
home (an MLflow store, results, caches), and a failing test says which one wrote there."""

from __future__ import annotations

import os
import sqlite3
import tempfile
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
