"""Sweep spec: a sweep YAML file in, one frozen, typed SweepSpec out.

Every bad input fails here, before any trial starts, with a message naming file, key and
expected form (see collapsetune.errors). `storage` stays as written: `~` and a relative folder
are resolved at launch by `collapsetune.storage.location`, a URI ("://") is kept as is.
Whether storage, the MLflow store and the Ray address answer is checked at launch by
`collapsetune.preflight`.

Example:
    >>> spec = load_sweep("sweeps/bitnet.yaml", ["num_samples=4"])  # doctest: +SKIP
    >>> tuner_space = param_space(spec)  # doctest: +SKIP
"""

from __future__ import annotations

from collapsetune.spec._base import FrozenMap
from collapsetune.spec._distribution import KINDS, Distribution
from collapsetune.spec._load import dump_spec, load_sweep, param_space, spec_to_dict
from collapsetune.spec._schedulers import SCHEDULERS, Scheduler
from collapsetune.spec._sections import (
    CollapseForecast,
    MlflowSpec,
    Objective,
    Resources,
    Rule,
    Search,
    StopSweepWhen,
    SweepSpec,
)

__all__ = [
    "KINDS",
    "CollapseForecast",
    "SCHEDULERS",
    "Distribution",
    "FrozenMap",
    "MlflowSpec",
    "Objective",
    "Resources",
    "Rule",
    "Scheduler",
    "Search",
    "StopSweepWhen",
    "SweepSpec",
    "dump_spec",
    "load_sweep",
    "param_space",
    "spec_to_dict",
]
