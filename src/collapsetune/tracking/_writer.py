"""The one thread that makes every MLflow call of a sweep (`_Writer`), and the packing of
queued reports into `log_batch` calls within MLflow's limits (`_batches`)."""

from __future__ import annotations

import logging
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from collapsetune.tracking._batch import log_batch
from collapsetune.tracking._names import BATCH_METRICS as _BATCH_METRICS
from collapsetune.tracking._names import BATCH_TAGS as _BATCH_TAGS
from collapsetune.tracking._names import TAG_MAX as _TAG_MAX

logger = logging.getLogger(__name__)


class _Writer:
    """One thread that owns every MLflow call of a sweep, in the order they were asked for.

    `call` runs a function on the thread and returns its Future (run creation: the caller
    needs the id, and Tune's loop waits for it). Calls go ahead of every queued write, also
    between the writes of a round: a round can take a second with a hundred runs, and a
    trial's start would otherwise wait for all of it (docs/benchmarks.md, driver throughput).
    `log` queues one report; reports waiting for the same run are merged into
    one `log_batch`. `data` queues any other write. A write that raises is dropped and
    counted, so MLflow trouble never reaches Tune's loop. The queue is bounded: when MLflow
    is slower than the trials, `log` blocks Tune's loop instead of growing without end.
    """

    def __init__(self, connect: Callable[[], MlflowClient], max_pending: int = 20_000, linger_s: float = 0.2,
                 refused: Callable[..., tuple[str | None, list[RunTag], str]] | None = None):
        self._connect = connect  # called on the thread: opening a store can take seconds
        self._refused = refused  # (run id, kind, key, why, by name) -> (new key or None, tags, line)
        self.client: MlflowClient | None = None
        self._broken: Exception | None = None  # why the store could not be opened
        self.failures: dict[str, int] = defaultdict(int)  # kind of failure -> count
        self._first_failure: dict[str, str] = {}
        self._calls: queue.SimpleQueue = queue.SimpleQueue()  # run creation goes first
        self._ops: queue.Queue = queue.Queue(maxsize=max_pending)
        self._wake = threading.Semaphore(0)
        # Reports wait up to linger_s to be written, so that each log_batch carries many
        # reports of a run, not one: a SQLite write costs ~10-20 ms whatever its size
        # (docs/benchmarks.md, driver throughput). A flush or a run creation cuts it short.
        self._linger_s = linger_s
        self._hurry = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="collapsetune-mlflow", daemon=True)
        self._thread.start()

    def call(self, fn: Callable[[MlflowClient], Any]) -> Future:
        future: Future = Future()
        self._calls.put((fn, future))
        self._hurry.set()
        self._wake.release()
        return future

    def log(self, run_id: str, step: int, metrics: list[Metric], tags: list[RunTag]) -> None:
        self._put(("log", run_id, step, metrics, tags))

    def data(self, fn: Callable[[MlflowClient], Any], run_id: str | None = None) -> None:
        """Queues a write; with `run_id`, one that touches only that run, so only that run's
        waiting reports need writing before it (the others keep batching)."""
        self._put(("data", fn, run_id))

    def flush(self) -> None:
        """Returns once everything queued before it is written (or dropped)."""
        done = threading.Event()
        self._put(("flush", done))
        self._hurry.set()
        done.wait()

    def close(self) -> None:
        self.flush()
        self._closed = True
        self._wake.release()
        self._thread.join()

    def failure_summary(self) -> str:
        total = sum(self.failures.values())
        first = "; ".join(f"{kind}: {self._first_failure[kind]}" for kind in self.failures)
        return f"{total} MLflow write(s) failed ({first})"[:_TAG_MAX]

    def write_batch(self, run_id: str, metrics: Sequence[Metric] = (), params: Sequence[Param] = (),
                    tags: Sequence[RunTag] = ()) -> None:
        """One log_batch, on this thread, that an entry MLflow refuses costs only that entry:
        renamed or dropped (`_Names.refused`), and counted."""
        def refused(kind: str, key: str, why: str, by_name: bool) -> tuple[str | None, list[RunTag]]:
            if self._refused is None:
                new, tags, line = None, [], f"MLflow refused {kind} entry {key!r} ({why}); dropped"
            else:
                new, tags, line = self._refused(run_id, kind, key, why, by_name)
            if line:
                self._count("entry refused", line, warn=False)  # _Names warned
            return new, tags

        log_batch(self.client, run_id, metrics, params, tags, refused=refused)

    def _put(self, op: tuple) -> None:
        self._ops.put(op)
        self._wake.release()

    def _loop(self) -> None:
        try:
            self.client = self._connect()
        except Exception as exc:  # noqa: BLE001 - every call's caller gets it
            self._broken = exc
        while True:
            self._wake.acquire()
            if not self._closed:
                self._hurry.wait(self._linger_s)
            self._hurry.clear()
            while self._wake.acquire(blocking=False):  # everything queued so far is taken below
                pass
            self._serve_calls()
            ops = []
            while True:
                try:
                    ops.append(self._ops.get_nowait())
                except queue.Empty:
                    break
            self._run(ops)
            if self._closed and self._ops.empty() and self._calls.empty():
                return

    def _serve_calls(self) -> None:
        while not self._calls.empty():
            fn, future = self._calls.get()
            try:
                if self._broken is not None:
                    raise self._broken
                future.set_result(fn(self.client))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                future.set_exception(exc)

    def _run(self, ops: list[tuple]) -> None:
        pending: dict[str, list[tuple]] = {}  # run id -> its reports waiting, in order
        for op in ops:
            if op[0] == "log":  # no write yet: nothing for a waiting call to go ahead of
                pending.setdefault(op[1], []).append(op[2:])
                continue
            self._serve_calls()
            if op[0] == "data" and op[2] is not None:  # one run's write: after that run's reports
                self._write_reports({op[2]: pending.pop(op[2], [])})
            else:  # whatever came before this op is written first
                self._write_reports(pending)
                pending = {}
            if op[0] == "flush":
                op[1].set()
            else:
                self._safely("write failed and was dropped", lambda: op[1](self.client))
        self._write_reports(pending)

    def _write_reports(self, pending: dict[str, list[tuple]]) -> None:
        for run_id, reports in pending.items():
            self._serve_calls()
            for metrics, tags in _batches(reports):
                self._safely("log_batch failed and was dropped",
                             lambda: self.write_batch(run_id, metrics=metrics, tags=tags))

    def _safely(self, kind: str, fn: Callable[[], Any]) -> None:
        try:
            if self._broken is not None:
                raise self._broken
            fn()
        except Exception as exc:  # noqa: BLE001 - a tracking failure must not end the sweep
            self._count(kind, f"{type(exc).__name__}: {str(exc)[:300]}")

    def _count(self, kind: str, text: str, warn: bool = True) -> None:
        if kind not in self._first_failure:
            self._first_failure[kind] = text
            if warn:
                logger.warning("collapsetune: MLflow %s (further failures of this kind are counted on the "
                               "parent run, not printed): %s", kind, text)
        self.failures[kind] += 1


def _batches(reports: Sequence[tuple]) -> list[tuple[list[Metric], list[RunTag]]]:
    """Whole reports packed into log_batch calls within MLflow's limits, each one call to the
    store (so an index in MLflow's error is the batch's own). The step tag of a batch is its
    last report's, so a batch that fails never claims steps it did not write."""
    batches: list[tuple[list[Metric], list[RunTag]]] = []
    metrics: list[Metric] = []
    tags: dict[str, RunTag] = {}
    for step, report_metrics, report_tags in reports:
        new_tags = len(tags.keys() | {t.key for t in report_tags})
        if metrics and (len(metrics) + len(report_metrics) + new_tags > _BATCH_METRICS or new_tags > _BATCH_TAGS):
            batches.append((metrics, list(tags.values())))
            metrics, tags = [], {}
        metrics = metrics + list(report_metrics)
        tags.update((t.key, t) for t in report_tags)  # a later report's verdict wins
    if metrics or tags:
        batches.append((metrics, list(tags.values())))
    # A single report larger than one batch: split it; the step tag rides in the last piece.
    out = []
    for metrics, tags in batches:
        while len(metrics) + len(tags) > _BATCH_METRICS:
            out.append((metrics[:_BATCH_METRICS], []))
            metrics = metrics[_BATCH_METRICS:]
        out.append((metrics, tags))
    return out
