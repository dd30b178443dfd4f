"""A model wrapper written outside collapsetune, to the contract in DESIGN.md only.

The "model" is a closed-form stand-in with the pathology the tool exists for: with a large
learning rate its loss falls fastest while its vocabulary collapses to a few tokens, so a
loss-only sweep would pick it. Deterministic, no Ray import, instant steps.
"""

from __future__ import annotations

import math
import os
import time


class Toy:
    def __init__(self, config: dict):
        known = {"lr", "seed", "max_iterations", "fail_at", "sleep", "fail_once_at_start"}
        unknown = set(config) - known
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; valid: {sorted(known)}")
        # A file: a healthy trial fails the first time it starts (with one slot that is on an
        # actor reused from the trial before it), then never again.
        marker = config.get("fail_once_at_start")
        if marker and float(config["lr"]) <= 0.05 and not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("failing while the trial starts, once")
        self.lr = float(config["lr"])
        self.fail_at = int(config.get("fail_at", 0))
        self.sleep = float(config.get("sleep", 0.0))  # seconds per step, for resume tests
        self.t = 0

    def step(self) -> dict[str, float]:
        self.t += 1
        time.sleep(self.sleep)
        if self.fail_at and self.t == self.fail_at:
            raise RuntimeError("boom")
        collapsing = self.lr > 0.05
        loss = 3.0 * math.exp(-self.t * (0.6 if collapsing else 0.2)) + 1.0
        tokens = 4.0 if collapsing and self.t >= 2 else 60.0 + self.t
        return {"train/loss": loss, "val/loss": loss, "collapse/unique_tokens": tokens}

    def samples(self) -> str:
        return "the the the" if self.lr > 0.05 and self.t >= 2 else f"a varied sample at step {self.t}"

    def write_artifacts(self, directory: str) -> None:
        with open(f"{directory}/vocabulary.txt", "w") as f:
            f.write("collapsed\n" if self.lr > 0.05 and self.t >= 2 else "healthy\n")

    def state_dict(self) -> dict:
        return {"t": self.t}

    def load_state_dict(self, state: dict) -> None:
        self.t = int(state["t"])


class Retunable(Toy):
    """Toy with the optional `reconfigure(config) -> bool`: it takes a new `lr` in place, so a
    PBT copy onto its actor keeps it. Each build appends "<pid> <lr>" to the file `builds`
    names (when set), and each reconfigure "<pid> <lr> kept", for tests to count builds
    across Ray's actor processes."""

    def __init__(self, config: dict):
        super().__init__({k: v for k, v in config.items() if k != "builds"})
        if config.get("builds"):
            with open(config["builds"], "a") as f:
                f.write(f"{os.getpid()} {self.lr}\n")

    def reconfigure(self, config: dict) -> bool:
        self.lr = float(config["lr"])
        if config.get("builds"):
            with open(config["builds"], "a") as f:
                f.write(f"{os.getpid()} {self.lr} kept\n")
        return True
