"""Names as MLflow stores them: one rule for metric, param and tag keys, and one way to
flatten a nested config into params. Used by the driver's callback and by the parent run's
summary, so a key is spelled the same everywhere.

MLflow 3.17 (`mlflow.utils.validation`) takes letters, digits, `_ - . / :` and spaces, at
most 250 characters, and no name a path normalisation would change or that starts with `..`
or `/` (`a//b`, `./a`, `..x`). A longer name is cut, with a hash of the whole after `-` so
long names stay distinct and the cut form is still a name MLflow takes.

Example:
    >>> mlflow_key("acc@1"), mlflow_key("weird metric@!"), mlflow_key("a//b"), mlflow_key("..x")
    ('acc_1', 'weird metric__', 'a/_/b', '_.x')
    >>> len(mlflow_key("m" * 300)), mlflow_key("m" * 300)[-11:]
    (250, '-8a192d15f6')
    >>> flatten({"model": {"d": 64}, "lr": 0.1})
    {'model.d': 64, 'lr': 0.1}
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from collapsetune.escape import quoted as _shown

KEY_MAX = 250  # MLflow's limit on a metric, param or tag name (MAX_ENTITY_KEY_LENGTH)
PARAM_KEY_MAX = KEY_MAX  # what a sweep file's param names are checked against
PARAM_MAX = 6000  # MLflow's limit on a param value
TAG_MAX = 8000  # and on a tag value
BATCH_METRICS = 1000  # MLflow's limits on one log_batch (metrics and tags together)
BATCH_TAGS = 100
_BAD = re.compile(r"[^/\w.\- :]")  # `validate_param_and_metric_name`'s POSIX form
# What any MLflow takes: a server on Windows refuses `:`, and `\w` there may be ASCII only.
_BAD_STRICT = re.compile(r"[^/A-Za-z0-9_.\- ]")


def mlflow_key(name: str, strict: bool = False) -> str:
    """`name` with every character MLflow refuses as `_`, empty or dot-only path parts as
    `_`, a leading `..` as `_.`, and, past 250 characters, cut with a hash of the whole so
    long names stay distinct. `strict`: ASCII letters, digits and `_ - . /` and spaces only,
    for a store that refused the ordinary form."""
    safe = (_BAD_STRICT if strict else _BAD).sub("_", str(name)) or "_"
    safe = "/".join(part if part not in ("", ".", "..") else "_" for part in safe.split("/"))
    if safe.startswith(".."):
        safe = "_" + safe[1:]
    if len(safe) > KEY_MAX:
        safe = f"{safe[:KEY_MAX - 11]}-{hashlib.sha1(str(name).encode()).hexdigest()[:10]}"
    return safe


def param_key_problem(key: str) -> str | None:
    """Why MLflow would refuse `key` as a param name, or None."""
    if len(key) > PARAM_KEY_MAX:
        return f"MLflow param names are at most {PARAM_KEY_MAX} characters, this one has {len(key)}"
    if not key or _BAD.search(key):
        return ("MLflow param names may contain only letters, digits, _, -, ., space, : and /; "
                f"rename {_shown(key)}")
    if mlflow_key(key) != key:  # a path part MLflow refuses: what mlflow_key would rename
        return ("MLflow refuses param names that read as odd paths (//, ./, a lone . or .., a leading or "
                f"trailing /); rename {_shown(key)}")
    return None


def param_keys(values: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """The param names MLflow gets for `values`: nested mappings flattened with '.', as the
    tracking callback flattens a trial's config."""
    for key, value in values.items():
        if isinstance(value, Mapping) and value:
            yield from param_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as flat `a.b` keys (how MLflow params hold it)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def run_name(trial_id: str, status: str, config: dict, knobs: Sequence[str], limit: int = 80) -> str:
    """`collapsed 00003 · lr=0.01, weight_decay=0.1`: the trial's verdict first (MLflow's runs
    list shows only a name's first ~14 characters), its number (its id's last part; the whole
    id is the run's `ray.trial_id` tag) and the searched knobs' values, cut to `limit` characters.

    Example:
        >>> run_name("a1b2c_00003", "collapsed", {"lr": 0.0123456, "seed": 1}, ["lr"])
        'collapsed 00003 · lr=0.0123'
    """
    number = trial_id.rsplit("_", 1)[-1]
    head = f"{status} {number}".strip()
    flat = flatten(config)
    values = ", ".join(f"{k}={_short(flat[k])}" for k in knobs if k in flat)
    name = f"{head} · {values}" if values else head
    return name if len(name) <= limit else name[:limit - 1] + "…"


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
