"""Function trainables: a user's own loop, `train(config)`, as a model wrapper.

A sweep may name a plain function (`trainable: my_module:train`) that runs its own loop and
calls `collapsetune.session.report(metrics, checkpoint=..., samples=...)` once per report.
`function_wrapper(train)` turns it into a class with the wrapper contract (`step()`,
`state_dict()`, `load_state_dict()`, `samples()`, `close()`), and `CollapseTrainable`
drives that class like any other.

Design: one path, not two. The function runs on a thread of the trial's process; each
`step()` lets it run until its next `report()`, which hands the report over through a
queue and blocks until the next `step()`. So one `step()` returns one report, and the loop
never runs ahead of Tune: while it waits, Tune may checkpoint, stop or copy the trial. The
rules, the penalised objective, the stopper, ASHA, PBT rescue, MLflow and resume then work
on function trainables through the class code with no second path, and a verdict means
the same for both. (Ray's own function API would have needed a second trainable, a second
checkpoint format and a second home for the rules.)

- The wrapper's state is the last checkpoint the loop reported (copied at report time),
  the report it came with and the reports so far. Restored (resume, a PBT copy), the loop
  starts again with that checkpoint from `get_checkpoint()`, and the reports it makes again
  up to where the trial was are run but not shown: every report reaches Tune once, and the
  rule state saved with them stays in step. A loop that reports a checkpoint every time
  replays nothing.
- A trial Tune stops (collapsed, ASHA, `max_iterations`) ends the loop: the `report()` it
  waits in raises a private `BaseException`, which `except Exception` in user code lets
  through and which the thread swallows.
- An exception in the loop fails the trial with that exception. A loop that returns before
  Tune stopped it fails it too, saying how many reports it made: the loop should run
  `config["max_iterations"]` reports (the launcher always passes it).

Example:
    >>> from collapsetune import session
    >>> def train(config):
    ...     for step in range(config["max_iterations"]):
    ...         session.report({"val/loss": 1.0 / (step + 1)})
    >>> wrapper = function_wrapper(train)({"max_iterations": 2})
    >>> wrapper.step(), wrapper.step()
    ({'val/loss': 1.0}, {'val/loss': 0.5})
    >>> wrapper.close()
"""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Callable
from typing import Any

from collapsetune import session

__all__ = ["FunctionWrapper", "function_wrapper"]

# Seconds close() waits for a stopped loop to leave report() and unwind (a framework's
# teardown included); past that the daemon thread is left to the process's end.
_UNWIND_S = 30.0


def function_wrapper(fn: Callable[[dict], Any]) -> type[FunctionWrapper]:
    """A wrapper class running `fn(config)`, named after it (in `validate`'s and Ray's
    messages). `fn.config_class` and `fn.reported_metrics`, when set, mean what they mean on
    a class wrapper: `validate` checks the sweep against them."""
    attrs: dict[str, Any] = {"fn": staticmethod(fn), "__module__": fn.__module__, "__qualname__": fn.__qualname__}
    for name in ("config_class", "reported_metrics"):
        if hasattr(fn, name):
            attrs[name] = getattr(fn, name)
    return type(fn.__name__, (FunctionWrapper,), attrs)


class _Stopped(BaseException):
    """Raised in the loop's `report()` when the trial ends: not an Exception, so user code's
    `except Exception` does not swallow it."""


class FunctionWrapper:
    """Runs `fn(config)` on a thread, one report per `step()`. Make one with
    `function_wrapper(fn)`; see the module docstring."""

    fn: Callable[[dict], Any]

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = dict(config)
        self.checkpoint: dict[str, Any] | None = None  # what session.get_checkpoint() returns
        self._checkpoint_report = 0  # the report the checkpoint came with
        self._reports = 0  # reports Tune has had from this trial, before a restore included
        self._replay = 0  # reports the restarted loop makes again before a new one
        self._samples: str | None = None
        self._go: queue.Queue = queue.Queue()  # to the loop: True (next report) or False (stop)
        self._out: queue.Queue = queue.Queue()  # from the loop: ("report", ...), ("return",), ("error", exc)
        self._thread: threading.Thread | None = None

    # --- the trial's side --------------------------------------------------------------------

    def step(self) -> dict[str, float]:
        while True:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"collapsetune-{self.fn.__name__}",
                                                daemon=True)
                session._only.append(self)
                self._thread.start()
            else:
                self._go.put(True)
            kind, *payload = self._out.get()
            if kind == "error":
                raise payload[0]
            if kind == "return":
                raise RuntimeError(
                    f"{self.fn.__name__}(config) returned after {self._reports} report(s), before the trial "
                    f"ended; run config['max_iterations'] reports (it is {self.config.get('max_iterations')})")
            metrics, checkpoint, samples = payload
            self._reports += 1
            if checkpoint is not None:
                self.checkpoint, self._checkpoint_report = checkpoint, self._reports
            if self._replay:  # made again after a restore: Tune has it already
                self._replay -= 1
                continue
            self._samples = samples
            return metrics

    def state_dict(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "checkpoint_report": self._checkpoint_report,
                "reports": self._reports}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self._thread is not None:
            raise RuntimeError("load_state_dict() after the loop started; CollapseTrainable restores first")
        self.checkpoint = state["checkpoint"]
        self._checkpoint_report = int(state["checkpoint_report"])
        self._reports = self._checkpoint_report  # the loop starts again from its checkpoint
        self._replay = int(state["reports"]) - self._checkpoint_report

    def samples(self) -> str | None:
        return self._samples

    def close(self) -> None:
        """End the loop (Tune stopped the trial, or reuses the actor) and wait for it to unwind."""
        if self._thread is None:
            return
        self._go.put(False)
        self._thread.join(_UNWIND_S)
        if self in session._only:
            session._only.remove(self)

    # --- the loop's side (its own thread) ----------------------------------------------------

    def _run(self) -> None:
        session._local.trial = self
        try:
            self.fn(dict(self.config))
        except _Stopped:
            return
        except BaseException as exc:  # noqa: BLE001 - re-raised by step() on the trial's thread
            self._out.put(("error", exc))
        else:
            self._out.put(("return",))

    def report(self, metrics: dict[str, Any], checkpoint: Any, samples: str | None) -> None:
        """session.report() on the loop's thread: hand over, wait for the next step()."""
        # A copy, so that tensors the loop goes on training are saved as they were now.
        self._out.put(("report", metrics, None if checkpoint is None else copy.deepcopy(dict(checkpoint)), samples))
        if not self._go.get():
            raise _Stopped
