"""The check each built-in model's `reconfigure` must pass (imported by its test file)."""

from __future__ import annotations

import copy
from typing import Any


def kept_and_rebuilt_steps(cls: type, base: dict[str, Any], knobs: dict[str, Any], *, donor: dict[str, Any] | None = None,
                           kept: dict[str, Any]) -> tuple[Any, dict, dict]:
    """A PBT copy onto an actor that holds a `cls` wrapper: the kept wrapper (built with
    `base | kept`, one step in) takes the copy's `knobs` (reconfigure) and the donor's
    checkpoint, and must then train as a wrapper built afresh for `base | knobs`.

    Returns: the kept wrapper, its next step's metrics, the rebuilt wrapper's.
    """
    giver = cls(base | (donor or {}))
    giver.step()
    state = giver.state_dict()
    wrapper = cls(base | kept)
    wrapper.step()
    rebuilt = cls(base | knobs)
    rebuilt.load_state_dict(copy.deepcopy(state))  # as from a file: nothing shared; torch's RNG too, so
    # each loads just before it steps
    expected = rebuilt.step()
    assert wrapper.reconfigure(base | knobs)
    wrapper.load_state_dict(copy.deepcopy(state))
    return wrapper, wrapper.step(), expected
