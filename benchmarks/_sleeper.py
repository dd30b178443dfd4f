"""The model wrapper of the driver benchmarks (overhead.py, throughput.py, worker_startup.py):
a report is a sleep, so what is measured is the sweep's own cost, not a model's.

It meets the wrapper contract of DESIGN.md and imports nothing but the standard library, as
a user's wrapper for a model without torch would. A benchmark copies this file beside its
sweep as `sleeper.py` and names `sleeper:Sleeper` (or `sleeper:SampledSleeper`), so the
trials find it the way they find a user's module.
"""

from __future__ import annotations

import os
import sys
import time

_PAGE_MIB = os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_mib() -> tuple[float, float]:
    """This process's resident memory, and of that what no file backs (Linux): what one
    trial's worker holds, and what it cannot share with other workers (shared libraries'
    pages are file-backed)."""
    with open("/proc/self/statm") as f:
        resident, shared = (int(n) for n in f.read().split()[1:3])
    return resident * _PAGE_MIB, (resident - shared) * _PAGE_MIB


class Sleeper:
    """Sleeps `config["seconds"]` per report. Reports a falling loss, a constant collapse
    metric (50 distinct tokens: a `below: 20` rule never fires), when its sleep began and
    ended (`bench/t0`, `bench/t1`: time.time()), its worker's memory (`bench/rss_mib`,
    `bench/anon_mib`: see memory_mib) and whether torch is loaded in it (`bench/torch`:
    nothing here needs it)."""

    def __init__(self, config: dict):
        self.seconds, self.t = float(config["seconds"]), 0

    def step(self) -> dict[str, float]:
        self.t += 1
        t0 = time.time()
        time.sleep(self.seconds)
        rss, anon = memory_mib()
        return {"train/loss": 1.0 / self.t, "val/loss": 1.0 / self.t, "collapse/unique_tokens": 50.0,
                "bench/t0": t0, "bench/t1": time.time(), "bench/rss_mib": rss, "bench/anon_mib": anon,
                "bench/torch": float("torch" in sys.modules)}

    def state_dict(self) -> dict:
        return {"t": self.t}

    def load_state_dict(self, state: dict) -> None:
        self.t = state["t"]


class SampledSleeper(Sleeper):
    """A Sleeper with a text sample per report, as the built-in models have: MLflow then
    writes each trial's samples too (throughput.py)."""

    def samples(self) -> str:
        return f"prompt ||| continuation at report {self.t}"
