"""`search.warm_start`: the results folders of earlier sweeps whose ended trials seed a new
sweep's Optuna study, checked before Ray starts.

`load_sweep` checks the key's form without I/O; `check` reads each folder's resolved sweep
(`sweep.yaml`, written by `collapsetune run`) and refuses, naming the sweep file and key,
a folder that is not a collapsetune results folder and one whose search space or objective
does not match the new sweep's. Matching means the same dimension names, each of the same
kind (uniform, loguniform, randint, choice, const) with bounds or values that overlap the new
ones; where they overlap only in part, the searcher skips the trials outside the new space
and says how many (`CollapseOptunaSearch.add_warm_start`). `collapsetune validate` and
`collapsetune run` call it; `resume` does not: a resumed sweep's study holds the trials.

Example:
    >>> from collapsetune.warm_start import check
    >>> check(load_sweep("sweeps/mop_clip.yaml", ["search.warm_start=results/mop-clip-20261205-101500"]))  # doctest: +SKIP
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from collapsetune.errors import SpecError, raise_all
from collapsetune.names import LAUNCH_FILE, SWEEP_FILE
from collapsetune.spec import SweepSpec
from collapsetune.storage import LOCK_FILE
from collapsetune.spec._distribution import Distribution

__all__ = ["check", "folders"]

KEY = "search.warm_start"
_FORM = ("expected the results folder of an earlier collapsetune sweep (the folder `collapsetune run` "
         f"printed, holding {SWEEP_FILE}, {LAUNCH_FILE} and Ray's experiment_state-*.json)")


def folders(spec: SweepSpec) -> list[str]:
    """The sweep's warm-start folders as absolute paths (a relative one means the launch directory)."""
    return [_real(folder) for folder in spec.search.warm_start]


def check(spec: SweepSpec) -> None:
    """Refuses a warm start that cannot seed this sweep's study.

    Raises:
        SpecError: naming the sweep file, `search.warm_start[i]`, what is wrong and the
            expected form; SpecErrors when several folders are wrong.
    """
    errors, seen = [], {}
    for i, folder in enumerate(spec.search.warm_start):
        key = f"{KEY}[{i}]" if len(spec.search.warm_start) > 1 else KEY
        same = seen.setdefault(_real(folder), key)
        if same != key:  # its trials would be added once anyway: a repeat is a slip, maybe for another folder
            errors.append(SpecError(f"{folder!r} is the folder {same} names already; expected each results "
                                    "folder once", key=key))
            continue
        errors += [SpecError(problem, key=key) for problem in _problems(spec, folder)]
    file = str(spec.source) if spec.source else None
    raise_all(err.in_file(file) if file else err for err in errors)


def _still_running(path: Path) -> bool:
    """Whether a driver holds the folder's lock (`storage.driver_lock`): its trials are not
    all ended, and its experiment state is rewritten while we would read it."""
    try:
        handle = open(path / LOCK_FILE, "rb")
    except OSError:  # none (a sweep from before the lock), or one we may not read: nothing says it runs
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def _real(folder: str) -> str:
    """`folder` as an absolute path with its links followed; a link loop stays as it is
    (`Path.resolve` raises on one, and `_problems` says it is not a folder)."""
    return os.path.realpath(os.path.expanduser(folder))


def _problems(spec: SweepSpec, folder: str) -> Iterator[str]:
    if "://" in folder:
        yield f"{folder!r} is a URI; {_FORM}, on this machine"
        return
    path = Path(folder).expanduser()
    if not path.is_dir():
        yield f"{folder!r} is not a folder; {_FORM}"
        return
    missing = [name for name in (SWEEP_FILE, LAUNCH_FILE) if not (path / name).is_file()]
    if missing or not any(path.glob("experiment_state*.json")):
        what = ", ".join(missing) or "no experiment_state-*.json"
        yield f"{folder!r} is not a collapsetune results folder ({what} missing); {_FORM}"
        return
    if _still_running(path):
        yield (f"{folder!r} is the results folder of a sweep still running (a driver holds its {LOCK_FILE}); "
               "expected the folder of a sweep that has ended: warm-start once it ends")
        return
    try:
        earlier = yaml.safe_load((path / SWEEP_FILE).read_text(encoding="utf-8"))
        space = {k: Distribution.from_yaml(v) for k, v in (earlier.get("search_space") or {}).items()}
    except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError, SpecError) as exc:
        yield f"{folder}/{SWEEP_FILE} could not be read ({type(exc).__name__}); {_FORM}"
        return
    try:  # what the searcher reads at launch, after Ray has started: read it here first
        from collapsetune.searchers import CollapseOptunaSearch

        list(CollapseOptunaSearch._stored_trials(_real(folder), lambda trial: False))  # as folders() names it
    except Exception as exc:  # a damaged state raises whatever its JSON or pickles do; never shown (not the user's file)
        yield f"{folder!r} holds an experiment state Ray cannot read ({type(exc).__name__}); {_FORM}"
        return
    yield from _space_problems(folder, space, dict(spec.search_space))
    objectives = [{"metric": o.metric, "mode": o.mode} for o in spec.objective.all]
    had = earlier.get("objective")
    if (had if isinstance(had, list) else [had]) != objectives:
        yield (f"{folder!r} optimised {_show(had)}, this sweep {_show(objectives if len(objectives) > 1 else objectives[0])}; "
               "its values would mean something else in this study: warm-start from a sweep with the same objective")


def _space_problems(folder: str, had: dict[str, Distribution], now: dict[str, Distribution]) -> Iterator[str]:
    """Keys that differ; dimensions of another kind, or whose bounds or values share nothing."""
    searched = {k for k, d in now.items() if d.kind != "const"}
    before = {k for k, d in had.items() if d.kind != "const"}
    if searched != before:
        parts = []
        if before - searched:
            parts.append(f"only the earlier sweep searches {', '.join(sorted(before - searched))}")
        if searched - before:
            parts.append(f"only this sweep searches {', '.join(sorted(searched - before))}")
        yield (f"{folder!r} searched other keys than this sweep ({'; '.join(parts)}); expected a results folder "
               "of a sweep with the same search_space keys")
        return
    for key in sorted(searched):
        a, b = had[key], now[key]
        if a.kind != b.kind:
            yield (f"{folder!r} searched {key} as {a.kind} {_show(a.args)}, this sweep as {b.kind} {_show(b.args)}; "
                   "expected the same kind of dimension")
        elif a.kind in ("uniform", "loguniform", "randint") and (a.args[1] < b.args[0] or b.args[1] < a.args[0]):
            yield (f"{folder!r} searched {key} in {_show(a.args)}, which does not overlap this sweep's "
                   f"{_show(b.args)}; expected bounds that overlap (trials outside the new bounds are skipped)")
        elif a.kind in ("choice", "grid") and not set(map(_hashable, a.args)) & set(map(_hashable, b.args)):
            yield (f"{folder!r} chose {key} from {_show(a.args)}, none of which is in this sweep's "
                   f"{_show(b.args)}; expected values in common (trials with other values are skipped)")


def _hashable(value: Any) -> Any:
    return yaml.safe_dump(value, default_flow_style=True) if isinstance(value, (Mapping, list, tuple)) else value


def _show(value: Any) -> str:
    from collapsetune.spec._base import thaw

    return yaml.safe_dump(thaw(value), default_flow_style=True, width=10**6).strip()
