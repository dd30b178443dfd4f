"""One sweep's metric and param names as MLflow took them: renamed, numbered when two clean
to one, or dropped when MLflow refused every form (`_Names`)."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import Any

from mlflow.entities import RunTag

from collapsetune.names import DROPPED_TAG, RENAMED_PREFIX
from collapsetune.tracking._names import KEY_MAX as _KEY_MAX
from collapsetune.tracking._names import TAG_MAX as _TAG_MAX
from collapsetune.tracking._names import mlflow_key

logger = logging.getLogger(__name__)


class _Names:
    """Metric and param names as MLflow accepts them (`collapsetune.tracking._names`), the
    same for every run of the sweep; two names that clean to one get `_2`, `_3`, ...

    A name MLflow refuses all the same (a store with stricter rules) is named again in the
    strict form, and dropped for the rest of the sweep if that is refused too; the runs that
    reported it say so in their `collapsetune.dropped` tag."""

    def __init__(self) -> None:
        self._map: dict[str, str | None] = {}  # reported name -> MLflow name (None: dropped)
        self._original: dict[str, str] = {}  # MLflow name -> reported name, renamed ones only
        self._taken: set[str] = set()
        self._refused: dict[str, str | None] = {}  # MLflow name it refused -> what replaced it
        self._dropped: dict[str, str] = {}  # reported name -> why MLflow refused it
        self._tagged: dict[str, set[str]] = defaultdict(set)  # run id -> renames it has tags for
        self._run_dropped: dict[str, list[str]] = defaultdict(list)  # run id -> dropped names it reported
        self._lock = threading.Lock()  # used from Tune's loop and the writer thread

    def key(self, name: str) -> str | None:
        """MLflow's name for a reported one; None once MLflow refused every form of it."""
        with self._lock:
            return self._key(name)

    def _key(self, name: str) -> str | None:
        if name not in self._map:
            clean = self._unique(mlflow_key(name))
            self._map[name] = clean
            if clean != name:
                logger.warning("collapsetune: MLflow cannot store the name %r; logged as %r (tag %s)",
                               name, clean, _renamed_tag(clean))
                self._original[clean] = name
        return self._map[name]

    def _unique(self, clean: str) -> str:
        base, n = clean, 1
        while clean in self._taken:
            n += 1
            clean = f"{base[:_KEY_MAX - 4]}_{n}"
        self._taken.add(clean)
        return clean

    def refused(self, run_id: str, kind: str, key: str, why: str,
                by_name: bool) -> tuple[str | None, list[RunTag], str]:
        """MLflow refused `key`: what to log it as instead (None: dropped), the run's tags that
        say so, and a line for the failure count ("" when this refusal was already counted)."""
        if kind == "tags":  # our own tags: nothing to name anew
            return None, [], f"MLflow refused the tag {key!r} ({why}); dropped"
        with self._lock:
            names = [name for name, k in self._map.items() if k == key] or [key]
            line = ""
            if key not in self._refused:
                strict = mlflow_key(key, strict=True)
                new = self._unique(strict) if by_name and strict != key and strict not in self._refused else None
                self._refused[key] = new
                for name in names:
                    self._map[name] = new
                original = self._original.pop(key, names[0])
                if new is not None:
                    self._original[new] = original
                else:
                    self._dropped[original] = why
                as_key = f" (as {key!r})" if key != original else ""
                line = f"MLflow refused the {kind[:-1]} {original!r}{as_key}: {why.strip()}; " + (
                    f"logged as {new!r} (tag {_renamed_tag(new)})" if new is not None else
                    f"dropped for the rest of the sweep (tag {DROPPED_TAG})")
                logger.warning("collapsetune: %s", line)
            return self._refused[key], self._tags_for(run_id, names), line

    def tags_for(self, run_id: str, names: Any) -> list[RunTag]:
        """Tags saying what each renamed or dropped name among the reported `names` was, those
        the run lacks yet."""
        with self._lock:
            return self._tags_for(run_id, names)

    def _tags_for(self, run_id: str, names: Any) -> list[RunTag]:
        tags, dropped = [], self._run_dropped[run_id]
        for name in dict.fromkeys(names):
            key = self._map.get(name)
            if key in self._original and key not in self._tagged[run_id]:
                self._tagged[run_id].add(key)
                tags.append(RunTag(_renamed_tag(key), self._original[key][:_TAG_MAX]))
            elif key is None and name in self._dropped and name not in dropped:
                dropped.append(name)
                lines = "\n".join(f"{n}: {self._dropped[n]}" for n in dropped)
                tags = [t for t in tags if t.key != DROPPED_TAG] + [RunTag(DROPPED_TAG, lines[-_TAG_MAX:])]
        return tags


def _renamed_tag(key: str) -> str:
    """The tag saying what a renamed key was: `collapsetune.renamed.<key>`, cut the way a
    name is when that passes 250 characters."""
    return mlflow_key(RENAMED_PREFIX + key)
