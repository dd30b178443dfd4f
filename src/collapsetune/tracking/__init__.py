"""Every MLflow read and write of collapsetune, by job:

- `_callback`: `MlflowTracking`, the Tune callback on the driver that owns a sweep's runs;
- `_writer`: the one thread that makes its MLflow calls, batching reports (`_batch`: a
  refused entry costs only itself, never its batch);
- `_names`: names and limits as MLflow takes them (also the sweep file's param-name check),
  and `_renames`, one sweep's renamed and dropped names;
- `_samples`: a trial's generated samples as the run's samples.md;
- `_catchup`: what a resumed driver's run lacks of its trial's record of reports;
- `_publish`: the sweep's answer on its parent run (`collapsetune.insight` words it);
- `_store`: queries and repairs of a store (a launch's runs for `report`, Ctrl-C's KILLED).

A name is loaded with its module on first use: the callback and the writer import Ray and
MLflow (seconds), while a sweep file's check and `report` need only names and queries.

Example:
    >>> from collapsetune.tracking import mlflow_key
    >>> mlflow_key("acc@1")
    'acc_1'
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the module of this package that holds it
_HOME = {
    "MlflowTracking": "_callback", "run_of": "_callback",
    "mark_interrupted": "_store", "children": "_store", "artifact_location": "_store", "find_runs": "_store",
    "RunIndex": "_store", "_connect": "_store", "create_experiment": "_store", "trial_runs": "_store",
    "parents": "_store",
    "_Writer": "_writer", "_batches": "_writer", "log_batch": "_batch",
    "mlflow_key": "_names", "flatten": "_names", "run_name": "_names", "param_key_problem": "_names",
    "param_keys": "_names", "KEY_MAX": "_names", "PARAM_KEY_MAX": "_names",
    "SAMPLE_MAX": "_samples", "sample_records": "_samples",
    "publish_sweep": "_publish", "Published": "_publish",
}
# Tags and file names read from here by older code and tests; their home is collapsetune.names.
_FROM_NAMES = ("ORPHAN_TAG", "RENAMED_PREFIX", "SAMPLES_FILE", "STOPPED_TAG")

__all__ = sorted([*(n for n in _HOME if not n.startswith("_")), *_FROM_NAMES])


def __getattr__(name: str) -> Any:
    if name in _FROM_NAMES:
        return getattr(importlib.import_module("collapsetune.names"), name)
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME, *_FROM_NAMES})
