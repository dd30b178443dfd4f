"""A wrapper that brings the run-time faults a sweep must survive, one per trial, chosen
by the trial's learning rate so each fault hits exactly one known trial:

- lr > 0.1: the first time it reaches report 2 it takes `hog_gb` GB of memory and holds
  it, so Ray's memory monitor kills its worker (a marker file makes it happen once);
- lr < 0.002: its step() never returns from report 2 on (until `report_timeout_s`);
- every trial reports metric names MLflow refuses (`acc@1`, `weird metric@!`).
"""

from __future__ import annotations

import math
import os
import time


class Faulty:
    def __init__(self, config: dict):
        self.lr = float(config["lr"])
        self.hog_gb = float(config.get("hog_gb", 0.0))
        self.marker = str(config.get("hog_marker", ""))
        self.sleep = float(config.get("sleep", 0.1))
        self.t = 0
        self.hog = None

    def step(self) -> dict[str, float]:
        self.t += 1
        time.sleep(self.sleep)
        if self.t == 2 and self.lr > 0.1 and self.hog_gb and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            self.hog = bytearray(int(self.hog_gb * 2**30))  # zero-filled: every page is touched
            time.sleep(60)  # held until the memory monitor kills this worker
        if self.t >= 2 and self.lr < 0.002:
            time.sleep(3600)  # hangs
        loss = 2.0 * math.exp(-0.3 * self.t) + 1.0 + self.lr
        return {"train/loss": loss, "val/loss": loss, "acc@1": 1.0 / loss, "weird metric@!": self.t,
                "collapse/unique_tokens": 50.0}

    def state_dict(self) -> dict:
        return {"t": self.t}

    def load_state_dict(self, state: dict) -> None:
        self.t = int(state["t"])
