"""What a user's own training loop calls: `report` once per report, `get_checkpoint` once
at the start. It imports no Ray, and neither does the user's code.

A sweep that names a plain function (`trainable: my_module:train`) runs `train(config)` in
a collapsetune trial (`collapsetune.function`); there `report` hands the metrics to the
trial, which runs the sweep's collapse rules on them exactly as on a class wrapper's
`step()`, and blocks until Tune asks for the next report. Outside a trial (`python
my_train.py`, a notebook) both are harmless: `report` does nothing and `get_checkpoint`
returns None, so the same loop runs on its own unchanged.

Example:
    >>> from collapsetune import session
    >>> def train(config):
    ...     state = session.get_checkpoint() or {"step": 0}
    ...     for step in range(state["step"], config["max_iterations"]):
    ...         session.report({"val/loss": 1.0 / (step + 1)}, checkpoint={"step": step + 1})
    >>> train({"max_iterations": 3})  # outside a sweep: runs, reports go nowhere
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

__all__ = ["get_checkpoint", "report"]

_local = threading.local()  # the trial whose user thread this is (collapsetune.function sets it)
_only: list = []  # the trials running in this process: a thread the user started finds the one


def report(metrics: Mapping[str, float], *, checkpoint: Mapping[str, Any] | None = None,
           samples: str | None = None) -> None:
    """Hand one report to the trial; returns when Tune asks for the next one.

    Args:
        metrics: Metric name to number (a 0-d tensor is fine), namespaced as in a class
            wrapper's `step()`: `val/loss`, `collapse/unique_tokens`, ...
        checkpoint: What `get_checkpoint()` gives back when this trial is restored (resume)
            or copied (PBT): a dict of plain data and tensors, such as `{"model":
            model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch}`. It is
            copied here, so the loop may go on training the same tensors. A report without
            one keeps the last; a restored trial then replays the reports since that one
            without showing them again, so pass one with every report for a cheap resume.
        samples: A few generated outputs as text, logged beside the report.

    Raises:
        TypeError: `metrics` or `checkpoint` is not a mapping.
        BaseException (private): Tune stopped the trial (collapsed, ASHA, max_iterations);
            let it pass (`except Exception` does) so the loop ends.
    """
    if not isinstance(metrics, Mapping):
        raise TypeError(f"report(metrics) takes a dict of metric name to number, got {type(metrics).__name__}")
    if checkpoint is not None and not isinstance(checkpoint, Mapping):
        raise TypeError(f"report(checkpoint=...) takes a dict of plain data and tensors, got "
                        f"{type(checkpoint).__name__}")
    trial = _current()
    if trial is not None:
        trial.report(dict(metrics), checkpoint, samples)


def get_checkpoint() -> dict[str, Any] | None:
    """The checkpoint this trial continues from (its own on resume, another trial's under PBT,
    with this trial's config), or None for a fresh start and outside a sweep."""
    trial = _current()
    return None if trial is None else trial.checkpoint


def _current():
    trial = getattr(_local, "trial", None)
    if trial is None and len(_only) == 1:  # a thread of the user's own (a data loader, a framework)
        trial = _only[0]
    return trial
