"""Every use of Ray's internals (private modules and attributes), in one place.

Importing this package first checks that the installed Ray still has each name collapsetune
relies on (`RELIED_ON`), and raises one `RayInternalsMoved` naming all that are gone and the
Ray version. The schedulers read Ray's bookkeeping through the small functions here; the
driver's fixes to Ray are in `collapsetune._ray.fixes` (`fixes.apply()`).
"""

from __future__ import annotations

from collapsetune._ray._check import RELIED_ON, REQUIRES, Internal, RayInternalsMoved, check, missing
from collapsetune._ray._internals import (
    PbtSettings,
    asha_bracket,
    bracket_rungs,
    pbt_settings,
    pbt_states,
    ray_address,
    resolved,
    save_pbt_state,
    schedule_save,
    set_bracket_rungs,
)

__all__ = ["RELIED_ON", "REQUIRES", "Internal", "PbtSettings", "RayInternalsMoved", "asha_bracket",
           "bracket_rungs", "check", "missing", "pbt_settings", "pbt_states", "ray_address", "resolved", "save_pbt_state",
           "schedule_save", "set_bracket_rungs"]
