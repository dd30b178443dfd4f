"""One `log_batch` that a single entry MLflow refuses cannot sink.

MLflow refuses a whole batch for one bad entry (a name with a character it does not take, a
negative timestamp) and, for most rules, names the entry in its error:
`Invalid value "a~b" for parameter 'metrics[4].name' supplied: ...`. `log_batch` here hands
that entry to its caller, who names it anew or drops it, and writes the rest again. Where
the error names no entry (a name past 250 characters), it halves the batch until the entry
is alone. Every other entry of the batch lands.

Writing part of a batch again is harmless: MLflow keeps one row per metric value, step and
timestamp, and a param or tag written twice with one value is written once.

Example:
    >>> log_batch(client, run_id, metrics=[Metric("val/loss", 1.0, 0, 1), Metric("a~b", 1.0, 0, 1)],
    ...           refused=lambda kind, key, why, by_name: (None, []))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

# (kind: "metrics" | "params" | "tags", key, MLflow's reason, whether it refused the name)
# -> (the key to write the entry under instead, or None to drop it; tags to write as well)
Refused = Callable[[str, str, str, bool], tuple[str | None, list[RunTag]]]

_NAMED = re.compile(r"Invalid value (.*) for parameter '(metrics|params|tags)\[(\d+)\]\.?(\w*)'", re.S)
_REFUSED = "INVALID_PARAMETER_VALUE"  # MLflow's error code for input it will not store


def log_batch(client: Any, run_id: str, metrics: Sequence[Metric] = (), params: Sequence[Param] = (),
              tags: Sequence[RunTag] = (), refused: Refused | None = None) -> None:
    """Writes what MLflow takes of a batch; each entry it refuses goes to `refused` (default:
    dropped). Raises what MLflow raised when the fault is not one entry's (a deleted run, a
    store that is down): then nothing of the batch was refused on its own."""
    entries = [("metrics", m) for m in metrics] + [("params", p) for p in params] + [("tags", t) for t in tags]
    _write(client, run_id, entries, refused or (lambda kind, key, why, by_name: (None, [])))


def _write(client: Any, run_id: str, entries: list[tuple[str, Any]], refused: Refused) -> None:
    handled: set[tuple[str, str]] = set()
    while entries:
        try:
            _send(client, run_id, entries)
            return
        except MlflowException as exc:
            if exc.error_code != _REFUSED:
                raise
            named = _named(exc, entries)
            if named is None:  # MLflow did not say which: find it by halving
                _halve(client, run_id, entries, refused, exc)
                return
            kind, key, by_name = named
            if (kind, key) in handled:  # a replacement refused too, or a loop: give it up
                raise
            handled.add((kind, key))
            entries = _replaced(entries, kind, key, refused(kind, key, _reason(exc), by_name))


def _halve(client: Any, run_id: str, entries: list[tuple[str, Any]], refused: Refused,
           exc: MlflowException) -> None:
    """Writes the batch in halves, down to the entries MLflow refuses on their own. When
    every entry is refused, the fault is not theirs (the run was deleted): raises `exc`."""
    try:
        active = client.get_run(run_id).info.lifecycle_stage == "active"
    except Exception:  # noqa: BLE001 - the store is in trouble, not an entry
        active = False
    if not active:
        raise exc
    alone: list[tuple[tuple[str, Any], MlflowException]] = []

    def write(part: list[tuple[str, Any]]) -> None:
        try:
            _send(client, run_id, part)
        except MlflowException as err:
            if err.error_code != _REFUSED:
                raise
            if len(part) == 1:
                alone.append((part[0], err))
            else:
                write(part[:len(part) // 2])
                write(part[len(part) // 2:])

    if len(entries) > 1:
        write(entries[:len(entries) // 2])
        write(entries[len(entries) // 2:])
    if len(entries) == 1 or len(alone) == len(entries):
        raise exc
    for (kind, entry), err in alone:
        named = _named(err, [(kind, entry)])
        by_name = named[2] if named else True
        answer = refused(kind, entry.key, _reason(err), by_name)
        _write(client, run_id, _replaced([(kind, entry)], kind, entry.key, answer), refused)


def _send(client: Any, run_id: str, entries: list[tuple[str, Any]]) -> None:
    by_kind: dict[str, list] = {}
    for kind, entry in entries:
        by_kind.setdefault(kind, []).append(entry)
    client.log_batch(run_id, **by_kind)


def _named(exc: MlflowException, entries: list[tuple[str, Any]]) -> tuple[str, str, bool] | None:
    """(kind, key, whether the name is what MLflow refused) of the entry its error names."""
    found = _NAMED.search(str(exc))
    if found is None:
        return None
    value, kind, index, field = found.group(1), found.group(2), int(found.group(3)), found.group(4)
    of_kind = [entry for k, entry in entries if k == kind]
    by_name = field in ("name", "key")
    if by_name:  # the key itself, JSON-encoded: exact even where MLflow's client split the batch
        try:
            key = json.loads(value)
        except ValueError:
            key = None
        if any(entry.key == key for entry in of_kind):
            return kind, key, True
    if index < len(of_kind):
        return kind, of_kind[index].key, by_name
    return None


def _replaced(entries: list[tuple[str, Any]], kind: str, key: str,
              answer: tuple[str | None, list[RunTag]]) -> list[tuple[str, Any]]:
    """The batch with every `kind` entry under `key` renamed (or dropped), plus the caller's tags."""
    new_key, tags = answer
    out = []
    for k, entry in entries:
        if k != kind or entry.key != key:
            out.append((k, entry))
        elif new_key is not None and new_key != key:
            out.append((k, _renamed(entry, new_key)))
    extra = {t.key for t in tags}
    return [(k, e) for k, e in out if not (k == "tags" and e.key in extra)] + [("tags", t) for t in tags]


def _renamed(entry: Any, key: str) -> Any:
    if isinstance(entry, Metric):
        return Metric(key, entry.value, entry.timestamp, entry.step)
    if isinstance(entry, Param):
        return Param(key, entry.value)
    return RunTag(key, entry.value)


def _reason(exc: MlflowException) -> str:
    """MLflow's words after the value (which may be 300 characters of the name itself)."""
    text = str(exc)
    found = _NAMED.search(text)
    if found is not None:
        text = text[found.end():].removeprefix(" supplied").lstrip(":. ") or "refused"
    return text[:300]
