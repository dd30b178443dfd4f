"""`CollapseTrainable`: the one Ray Tune Trainable that drives every model wrapper.

It builds the wrapper from the trial's config, calls `step()` once per report, runs the
sweep's collapse rules on the metrics, and adds `objective`, `collapse/detected`,
`collapse/margin` and the verdict (`collapse.status`, `collapse.reason`, and
`collapse.iteration` once collapsed or diverged) to the result. The rule state is saved
with the wrapper's state in the trial's checkpoint.

Under PBT a trial may restore another trial's checkpoint (an exploit): it keeps that
trial's weights but gets its own, perturbed config and fresh collapse rules (grace
included), and its next result names the donor (`pbt.donor`, `pbt/donor_report`). When
Tune reuses an actor (a paused trial resumed, a copy) whose wrapper has the optional
`reconfigure(config) -> bool` and differs only in the sweep's `mutable` knobs, the wrapper
is kept: it takes the new knobs and the checkpoint instead of being built again.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune

from collapsetune.collapse import (
    COLLAPSED,
    ITERATION_KEY,
    MARGIN_KEY,
    REASON_KEY,
    STATUS_KEY,
    CollapseMonitor,
)
from collapsetune.names import ARTIFACTS_DIR, CHECKPOINT_FILE, CONFIG_PREFIX, CPU_KEY, DONOR_KEY, DONOR_REPORT_KEY, OBJECTIVE_KEY

# What a collapsed or diverged trial scores. Finite, because MLflow and Optuna store it;
# far beyond any real loss, so it ranks below every healthy trial in ASHA's rungs and in
# TPE's split (both use ranks, not magnitudes).
WORST_OBJECTIVE = 1.0e9


@dataclass(frozen=True)
class TrialPlan:
    """What every trial of a sweep shares: which wrapper, which rules, which objective."""

    wrapper: str  # short name or "module:Class"
    search_dirs: tuple[str, ...]  # where a user's wrapper module may live (sweep dir, cwd)
    rules: tuple  # collapsetune.collapse.Rule: frozen data, so the plan pickles simply
    metric: str
    mode: str  # "min" | "max"
    more: tuple[tuple[str, str], ...] = ()  # further objectives (metric, mode), reported as objective/2, ...
    checkpoint_interval_s: float | None = None  # ask Tune for a checkpoint this often; None: never by time
    report_timeout_s: float | None = None  # a step() running longer fails the trial
    trial_timeout_s: float | None = None  # and so does a trial running longer in all
    mutable: tuple[str, ...] = ()  # config keys PBT changes mid-trial, reported as config/<key>
    grace_after_copy: int = 0  # each rule's grace at most this after PBT copies a checkpoint in
    # Also draw a trial that ends on neither its verdict's report nor its last (an ASHA cut):
    # in the checkpoint Tune saves as it ends. The sweep's draw_cut_trials (or collapse_forecast).
    draw_at_end: bool = False

    def monitor(self, reports_before: int | None = None) -> CollapseMonitor:
        """The rules' fresh state for a trial; `reports_before`: for a copy PBT made after that
        many reports (shorter grace, the trial's own report numbers)."""
        rules = self.rules if reports_before is None else tuple(r.after_copy(self.grace_after_copy) for r in self.rules)
        return CollapseMonitor(rules, divergence_metrics=tuple(dict.fromkeys(("train/loss", "val/loss", self.metric))),
                               reports_before=reports_before or 0)

    def worst(self, mode: str | None = None) -> float:
        return WORST_OBJECTIVE if (mode or self.mode) == "min" else -WORST_OBJECTIVE

    def judge(self, monitor: CollapseMonitor, metrics: dict[str, float]) -> dict[str, Any]:
        """One report's result: `metrics` run through the trial's rules (`monitor`, updated in
        place), plus `objective` (penalised once collapsed or diverged), `collapse/detected`,
        `collapse/margin` and the verdict. A pure function of the rules' state and the report,
        shared by the trainable and the replayed benchmark (benchmarks/collapse_bench.py), so
        both judge a report alike."""
        verdict = monitor.update(metrics)
        result: dict[str, Any] = dict(metrics)
        # An inconclusive trial keeps its objective: it is not known to be collapsed.
        result[OBJECTIVE_KEY] = self.worst() if verdict.stopping else metrics[self.metric]
        for i, (metric, mode) in enumerate(self.more, start=2):  # several objectives: Optuna reads these
            result[objective_key(i)] = self.worst(mode) if verdict.stopping else metrics[metric]
        result["collapse/detected"] = int(verdict.status == COLLAPSED)
        result[MARGIN_KEY] = monitor.margin()
        result[STATUS_KEY] = verdict.status
        result[REASON_KEY] = verdict.reason
        if verdict.stopping:
            result[ITERATION_KEY] = verdict.iteration
        return result


def objective_key(i: int) -> str:
    """The result key of the i-th objective (1-based): `objective`, then `objective/2`, ..."""
    return OBJECTIVE_KEY if i == 1 else f"{OBJECTIVE_KEY}/{i}"


def make_trainable(plan: TrialPlan, name: str) -> type[CollapseTrainable]:
    """A `CollapseTrainable` subclass bound to one sweep's plan, named for Ray's tables."""
    safe = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)
    return type(safe, (CollapseTrainable,), {"plan": plan})


class CollapseTrainable(tune.Trainable):
    """Drives a model wrapper (`__init__(config)`, `step()`, optional `state_dict()`,
    `load_state_dict()`, `reconfigure(config)`, `samples() -> str`, `write_artifacts(directory)`)
    under Ray Tune.
    `write_artifacts` is called where a user looks, never on the other reports (a picture
    costs a mop_clip trial more than a report's training; benchmarks/report_cost.py): on the
    report where the verdict turns and on the last report. A trial cut early (ASHA) gets none
    unless the plan's `draw_at_end` (the sweep's `draw_cut_trials`) asks for them: then a
    checkpoint saved after a report without pictures draws them (Tune saves one as any trial
    ends and syncs the trial's files to the results folder with it), and a wrapper without
    `state_dict`, which gets no checkpoints, also draws on report 1, the report whose files
    Ray syncs. Use `make_trainable` to bind a plan.

    Example:
        >>> trainable = make_trainable(plan, "bitnet_lm")  # doctest: +SKIP
        >>> tune.Tuner(trainable, param_space={...}).fit()  # doctest: +SKIP
    """

    plan: TrialPlan

    def setup(self, config: dict[str, Any]) -> None:
        from collapsetune.registry import resolve_trainable

        # Ray logs "Checkpoint successfully created at ..." (400 characters) for every
        # checkpoint of every trial on the driver's terminal; the results folder has them.
        for name in ("ray.train", "ray.tune"):
            logging.getLogger(name).setLevel(logging.WARNING)

        wrapper_cls = resolve_trainable(self.plan.wrapper, [Path(p) for p in self._search_dirs()])
        # CPU seconds of this process (all its threads) since the last report: what a trial
        # costs, building its model and data and saving its checkpoints included. Not importing
        # the wrapper's module: that is once per worker process (section 6 of
        # docs/benchmarks.md measures it), as a function trainable's imports are done while
        # Ray unpickles the function, before any mark of its own.
        self._cpu_mark = time.process_time()
        self.wrapper = wrapper_cls(dict(config))
        self._built_for = dict(config)  # the config the wrapper was built (or reconfigured) for
        self._start_trial()

    def _start_trial(self) -> None:
        """A trial's own state, fresh: on a new actor, or on one Tune reuses."""
        self._pending: dict[str, Any] | None = None  # a config the kept wrapper takes on (reset_config)
        self.monitor = self.plan.monitor()
        # Which Ray node runs this trial; none when a test drives the class in-process.
        self._node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
        self._checkpointed_at = time.monotonic()
        self._hung = False  # a step() overran its time and may still be running in a thread
        self._donor: tuple[str, int] | None = None  # (trial id, report) of a checkpoint PBT copied in
        self._copied_at: int | None = None  # the report after which PBT last copied a checkpoint in
        self._drawn_at: int | None = None  # the report whose pictures are in the trial's artifacts folder

    def step(self) -> dict[str, Any]:
        if self._pending is not None:  # a reused actor starting a trial afresh: no checkpoint came
            self._build_pending()
        metrics = {k: _number(k, v) for k, v in self._timed_step().items()}
        missing = [m for m in (self.plan.metric, *(m for m, _ in self.plan.more)) if m not in metrics]
        if missing:
            raise KeyError(f"objective metric(s) {missing} not in the model's report; it reported: {sorted(metrics)}")
        was_stopping = self.monitor.verdict.stopping
        result = self.plan.judge(self.monitor, metrics)
        verdict = self.monitor.verdict
        result["node_id"] = self._node_id  # which Ray node ran this report (hostnames may repeat)
        for key in self.plan.mutable:  # PBT changes these mid-trial: MLflow plots them per report
            value = self.config.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                result[CONFIG_PREFIX + key] = float(value)
        if self._donor is not None:
            result[DONOR_KEY], result[DONOR_REPORT_KEY] = self._donor
            self._donor = None
        interval = self.plan.checkpoint_interval_s
        if interval is not None and time.monotonic() - self._checkpointed_at >= interval:
            result["should_checkpoint"] = True  # Tune saves a checkpoint after this report
        if hasattr(self.wrapper, "samples") and (text := self.wrapper.samples()) is not None:
            result["samples"] = str(text)  # None: none this report (a function trainable's report(samples=))
        report = self.iteration + 1  # Ray counts a report once step() has returned
        if self._pictures_due(report, turned=was_stopping != verdict.stopping):
            self._draw(report)
        # Last, so that the report's CPU counts everything it did: pictures are drawn on the
        # report a trial ends with, and a mark taken before them left them in no report.
        now = time.process_time()
        result[CPU_KEY], self._cpu_mark = now - self._cpu_mark, now
        return result

    def _pictures_due(self, report: int, turned: bool) -> bool:
        """Whether step() draws this report's pictures: on the report where the verdict turns
        (the stopper ends the trial on it) and on the last one. Every other report's pictures
        would be overwritten before anyone sees them; with `draw_at_end`, a trial ended early
        otherwise gets its last report's pictures from save_checkpoint."""
        if not hasattr(self.wrapper, "write_artifacts"):
            return False
        if turned or report >= int(self.config.get("max_iterations", 0)):
            return True
        # No state_dict: no checkpoint at the trial's end to draw at, and Ray syncs a trial's
        # files on its first report (then every sync_period, 300 s), so report 1's reach the
        # results folder whenever the trial ends.
        return self.plan.draw_at_end and report == 1 and not hasattr(self.wrapper, "state_dict")

    def _draw(self, report: int) -> None:
        # Ray syncs the trial's working dir to its results folder (sync_artifacts), at once
        # when a checkpoint is saved, where the MLflow callback picks the files up when the
        # trial ends.
        folder = os.path.join(self.logdir, ARTIFACTS_DIR)
        os.makedirs(folder, exist_ok=True)
        self.wrapper.write_artifacts(folder)
        self._drawn_at = report

    def _search_dirs(self) -> tuple[str, ...]:
        """Where the wrapper's module is looked for beyond sys.path. When collapsetune started
        Ray, it shipped the module and the local modules it imports to every worker (runtime_env
        py_modules), and workers import only that, on every node alike, so a shared
        filesystem cannot hide what a real cluster lacks. In a Ray someone else started (a
        notebook, a test) nothing was shipped, and the sweep's folders are searched."""
        if ray.is_initialized() and ray.get_runtime_context().runtime_env.get("py_modules"):
            return ()
        return self.plan.search_dirs

    def _timed_step(self) -> dict[str, float]:
        """`wrapper.step()`, failing the trial with a clear reason when it overruns
        `report_timeout_s` or the trial's remaining `trial_timeout_s`."""
        limits = []
        if self.plan.report_timeout_s is not None:
            limits.append((self.plan.report_timeout_s, f"report_timeout_s={self.plan.report_timeout_s:g}"))
        if self.plan.trial_timeout_s is not None:
            left = self.plan.trial_timeout_s - self._time_total
            if left <= 0:
                raise TrialTimeout(f"the trial has run {self._time_total:.0f} s, past "
                                   f"trial_timeout_s={self.plan.trial_timeout_s:g}")
            limits.append((left, f"trial_timeout_s={self.plan.trial_timeout_s:g} (time left: {left:.0f} s)"))
        if not limits:
            return self.wrapper.step()
        timeout, which = min(limits)
        try:
            return _call_with_timeout(self.wrapper.step, timeout)
        except TimeoutError:
            self._hung = True
            raise TrialTimeout(f"step() of report {self.iteration + 1} did not return within {timeout:.0f} s "
                               f"({which}); the trial is failed and its slot freed") from None

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        if self._pending is not None:
            self._build_pending()
        state = {"monitor": self.monitor.state_dict(), "iteration": self.iteration, "trial_id": self.trial_id,
                 "copied_at": self._copied_at}
        if hasattr(self.wrapper, "state_dict"):
            state["wrapper"] = self.wrapper.state_dict()
        # Written whole or not at all: a full disk fails this save (the trial is retried from
        # its previous checkpoint) instead of leaving a truncated file to restore from.
        path = os.path.join(checkpoint_dir, CHECKPOINT_FILE)
        _write_state(state, path + ".tmp")
        os.replace(path + ".tmp", path)
        self._checkpointed_at = time.monotonic()
        if self.plan.draw_at_end and hasattr(self.wrapper, "write_artifacts") and 0 < self.iteration != self._drawn_at:
            # Tune saves a checkpoint as a trial ends (checkpoint_at_end, also when ASHA cuts
            # it) and syncs the trial's files right after: the pictures of its last report.
            # Off by default: on a trial cut at report 3 one drawing is ~40% of its CPU.
            self._draw(self.iteration)

    def load_checkpoint(self, checkpoint_dir: str) -> None:
        if self._pending is not None:  # the kept wrapper takes the new knobs, then the checkpoint
            if self.wrapper.reconfigure(dict(self._pending)):
                self._built_for, self._pending = self._pending, None
            else:
                self._build_pending()
        try:
            state = _read_state(checkpoint_dir, getattr(self.wrapper, "device", "cpu"))
        except Exception as exc:  # noqa: BLE001 - damaged or unreadable: try the one before
            state = self._older_state(checkpoint_dir, exc)
        owner = state.get("trial_id", self.trial_id)  # checkpoints from before trial ids were kept are its own
        if owner == self.trial_id:
            # Its own rules, as they were: restarted after a copy (shorter grace) if they were.
            self._copied_at = state.get("copied_at")
            self.monitor = self.plan.monitor(reports_before=self._copied_at)
            self.monitor.load_state_dict(state["monitor"])
        else:
            # PBT copied another trial's checkpoint into this one (an exploit): its weights, but
            # this trial's config, and fresh rules whose grace lets the new config settle.
            self._copied_at = int(state["iteration"])
            self.monitor = self.plan.monitor(reports_before=self._copied_at)
            self._donor = (str(owner), self._copied_at)
        if "wrapper" in state:
            self.wrapper.load_state_dict(state["wrapper"])
        if "iteration" in state:
            # The checkpoint's own report number: Ray's comes from its snapshot, which may name
            # a checkpoint that is gone and hand this one instead (collapsetune._ray.fixes, fix 4).
            self._iteration = int(state["iteration"])

    def _older_state(self, checkpoint_dir: str, why: Exception) -> dict:
        """The newest intact checkpoint older than a damaged one, beside it in the trial's
        folder (Ray keeps `checkpoint_num_to_keep` of them). Ray's report counter is set back
        to it, so the reports after it are trained and reported again."""
        here = Path(checkpoint_dir)
        older = sorted((p for p in here.parent.glob("checkpoint_*") if p.name < here.name), reverse=True)
        for candidate in older:
            try:
                state = _read_state(str(candidate), getattr(self.wrapper, "device", "cpu"))
            except Exception:  # noqa: BLE001
                continue
            if "iteration" in state:
                self._iteration = int(state["iteration"])
                print(f"collapsetune: checkpoint {here.name} is unreadable ({type(why).__name__}: {why}); "
                      f"restored {candidate.name} (report {self._iteration}) instead")
                return state
        raise RuntimeError(f"checkpoint {checkpoint_dir} is unreadable ({type(why).__name__}: {why}) and no "
                           "older intact checkpoint is beside it") from why

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        # Lets Tune reuse this actor for the next trial instead of starting a new process;
        # never one whose step() overran: it may still be running.
        if self._hung:
            return False
        if self._keeps_wrapper(new_config):
            # PBT pauses and resumes trials, and copies checkpoints between them, on the actors
            # it has: building the wrapper again (a corpus tokenized, features loaded) cost as
            # much as a report (docs/benchmarks.md, section 9). The wrapper stays; the checkpoint
            # Tune restores next goes into it after `reconfigure` (load_checkpoint), and a trial
            # that starts afresh instead gets a new wrapper at its first step.
            self._cpu_mark = time.process_time()
            self._start_trial()
            self._pending = dict(new_config)
            return True
        self._rebuild(new_config)
        return True

    def _keeps_wrapper(self, new_config: dict[str, Any]) -> bool:
        """Whether the wrapper may stay for `new_config`: it has the optional `reconfigure`, and
        only the sweep's `mutable` knobs (those PBT changes) differ from its config."""
        old = self._built_for
        if self.wrapper is None or not callable(getattr(self.wrapper, "reconfigure", None)):
            return False
        if not hasattr(self.wrapper, "load_state_dict") or set(old) != set(new_config):
            return False
        return all(old[k] == new_config[k] for k in old if k not in self.plan.mutable)

    def _build_pending(self) -> None:
        """The wrapper built for the config reset_config kept it for, as reset_config used to;
        its CPU counts in the trial's next report, as a build in reset_config did."""
        mark = self._cpu_mark
        self._rebuild(self._pending)
        self._cpu_mark = mark

    def _rebuild(self, config: dict[str, Any]) -> None:
        self.cleanup()  # a function trainable's loop waits in report(): end it
        self.wrapper = None  # free the old model before building the next one
        self.setup(config)

    def cleanup(self) -> None:
        close = getattr(self.wrapper, "close", None)
        if callable(close):
            close()


class TrialTimeout(TimeoutError):
    """A trial ran past `report_timeout_s` or `trial_timeout_s`."""


def _call_with_timeout(fn, timeout: float):
    """fn() on a daemon thread; TimeoutError when it has not returned in `timeout` seconds.
    The thread is left behind (Python cannot stop it); Tune ends this actor's process."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=run, name="collapsetune-step", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError
    if "error" in box:
        raise box["error"]
    return box["value"]


def _write_state(state: dict, path: str) -> None:
    """torch.save when the state holds tensors (every built-in model's does), else a plain
    pickle: a worker whose wrapper never imports torch then never loads it (it costs a
    worker ~1 s and ~180 MiB; benchmarks/worker_startup.py). Both read back as data only."""
    if _plain(state):
        with open(path, "wb") as f:
            pickle.dump(state, f)
        return
    import torch  # here, not at the top: only a state with tensors (or arrays) needs it

    torch.save(state, path)


def _read_state(checkpoint_dir: str, device: Any = "cpu") -> dict:
    path = os.path.join(checkpoint_dir, CHECKPOINT_FILE)
    with open(path, "rb") as f:
        if f.read(2) != b"PK":  # not torch.save's zip archive: _write_state's plain pickle
            f.seek(0)
            return _DataOnly(f).load()
    import torch  # here, not at the top: see _write_state

    # weights_only: a checkpoint is data, never code to run.
    # map_location: the restoring trial's device (a wrapper's `device`, the kit's for the built-in
    # models), whatever device saved it: a GPU checkpoint resumes on a CPU-only node, a CPU one on
    # a GPU, a PBT copy on another GPU. load_state_dict puts each tensor where it belongs.
    where = device if isinstance(device, (str, torch.device)) else "cpu"
    return torch.load(path, weights_only=True, map_location=where)


_PLAIN = (str, int, float, bool, bytes, type(None))


def _plain(value: Any) -> bool:
    """Only dicts, lists and tuples of str, numbers, bool, bytes and None: what pickles
    without naming a class (exact types; a subclass such as OrderedDict names its own)."""
    if type(value) is dict:
        return all(_plain(k) and _plain(v) for k, v in value.items())
    if type(value) in (list, tuple):
        return all(_plain(v) for v in value)
    return type(value) in _PLAIN


class _DataOnly(pickle.Unpickler):
    """Reads a plain pickle, refusing any class or function in it: a checkpoint is data,
    never code to run (what weights_only=True is for torch.load)."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"a checkpoint holds data only, not {module}.{name}")


def _number(key: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"step() must return numbers; {key!r} was {value!r}") from None


__all__: Sequence[str] = ["CONFIG_PREFIX", "CPU_KEY", "DONOR_KEY", "DONOR_REPORT_KEY", "WORST_OBJECTIVE", "CollapseTrainable", "TrialPlan", "TrialTimeout",
                         "make_trainable", "objective_key"]
