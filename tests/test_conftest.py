"""What tests/conftest.py changes for speed leaves the stores the tests use as MLflow makes them."""

from __future__ import annotations

import sqlite3

from mlflow.store.db import utils
from mlflow.tracking import MlflowClient


def _store(db) -> list[tuple]:
    """A store's schema, its schema revision and its experiments. A table's lines are sorted:
    MLflow's migrations order a table's CHECK constraints differently from run to run."""
    MlflowClient(f"sqlite:///{db}").search_experiments()  # opening it makes it
    with sqlite3.connect(db) as conn:
        return [*((kind, name, sorted(str(sql).splitlines()))
                  for kind, name, sql in conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")),
                *conn.execute("SELECT * FROM alembic_version"),
                *conn.execute("SELECT experiment_id, name, lifecycle_stage FROM experiments")]


def test_a_store_from_the_sessions_fresh_schema_is_the_store_mlflows_migrations_make(
        tmp_path, monkeypatch, _fresh_mlflow_schema):
    copied = _store(tmp_path / "copied.db")  # the session's copy (made now if this is the first store)
    assert utils._initialize_tables is not _fresh_mlflow_schema["build"]
    monkeypatch.setattr(utils, "_initialize_tables", _fresh_mlflow_schema["build"])  # MLflow's own
    migrated = _store(tmp_path / "migrated.db")
    assert copied == migrated and len(copied) > 50
