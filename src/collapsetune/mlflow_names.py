"""Names as MLflow stores them: one rule for metric, param and tag keys, and one way to
flatten a nested config into params. Used by the driver's callback and by the parent run's
summary, so a key is spelled the same everywhere.

MLflow takes letters, digits, `_ - . / :` and spaces, at most 250 characters, and no name a
path normalisation would change (`a//b`, `./a`, `..`).

Example:
    >>> mlflow_key("acc@1"), mlflow_key("weird metric@!"), mlflow_key("a//b")
    ('acc_1', 'weird metric__', 'a/_/b')
    >>> flatten({"model": {"d": 64}, "lr": 0.1})
    {'model.d': 64, 'lr': 0.1}
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

KEY_MAX = 250  # MLflow's limit on a metric, param or tag name
_BAD = re.compile(r"[^/\w.\- :]")


def mlflow_key(name: str) -> str:
    """`name` with every character MLflow refuses as `_`, empty or dot-only path parts as
    `_`, and, past 250 characters, cut with a hash of the whole so long names stay distinct."""
    safe = _BAD.sub("_", str(name)) or "_"
    safe = "/".join(part if part not in ("", ".", "..") else "_" for part in safe.split("/"))
    if len(safe) > KEY_MAX:
        safe = f"{safe[:KEY_MAX - 11]}~{hashlib.sha1(str(name).encode()).hexdigest()[:10]}"
    return safe


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as flat `a.b` keys (how MLflow params hold it)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
