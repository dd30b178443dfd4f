"""outside_wrapper.Toy written as a user's own loop: a function `train(config)` reporting
through collapsetune.session, with no Ray import. Same numbers as the class, report for report."""

from __future__ import annotations

import math
import time

from collapsetune import session


def train(config: dict) -> None:
    lr = float(config["lr"])
    every = int(config.get("checkpoint_every", 1))  # > 1: a restored trial replays reports
    state = session.get_checkpoint() or {"t": 0}
    for t in range(state["t"] + 1, 10**6):
        time.sleep(float(config.get("sleep", 0.0)))
        if t == int(config.get("fail_at", 0)):
            raise RuntimeError("boom")
        collapsing = lr > 0.05
        loss = 3.0 * math.exp(-t * (0.6 if collapsing else 0.2)) + 1.0
        tokens = 4.0 if collapsing and t >= 2 else 60.0 + t
        try:  # a user's broad except must not keep a stopped trial running
            session.report({"train/loss": loss, "val/loss": loss, "collapse/unique_tokens": tokens},
                           checkpoint={"t": t} if t % every == 0 else None,
                           samples="the the the" if collapsing and t >= 2 else f"a varied sample at step {t}")
        except Exception:  # noqa: BLE001
            pass
        if t == int(config.get("return_at", 0)):
            return
