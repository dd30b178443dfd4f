"""Probe which bitnet_lm settings collapse lastingly and which recover.

Runs the real ``trainables.bitnet_lm.BitNetLM`` wrapper (same LR schedule and metrics a
sweep sees) for named settings, at most ``--procs`` at a time with 1 torch thread each, and
prints one row per report: setting, step, generated unique tokens (greedy), argmax_unique,
val loss, seconds per report.

    python benchmarks/probe_bitnet_collapse.py --suite main
    python benchmarks/probe_bitnet_collapse.py --suite smoke
    python benchmarks/probe_bitnet_collapse.py --suite main --only hot_bpe1024 --set seed=1
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

# Shapes and schedules that the sweep files use; settings override them.
MAIN_BASE = dict(tokenizer="bpe", vocab_size=1024, d_model=64, n_layers=2, n_heads=4,
                 context=64, batch_size=32, steps_per_report=50, max_iterations=12,
                 warmup_steps=20)
SMOKE_BASE = dict(tokenizer="bpe", vocab_size=512, d_model=32, n_layers=1, n_heads=2,
                  context=32, batch_size=16, steps_per_report=40, max_iterations=8,
                  warmup_steps=10, gen_tokens=24, gen_prompts=8)

SUITES: dict[str, tuple[dict, dict[str, dict]]] = {
    "main": (MAIN_BASE, {
        "lr3e-3_wd0.1": dict(lr=3e-3, weight_decay=0.1),
        "lr1e-2_wd0.1": dict(lr=1e-2, weight_decay=0.1),
        "lr3e-2_wd0.1": dict(lr=3e-2, weight_decay=0.1),  # slowest to recover
        "lr3e-2_wd1.0": dict(lr=3e-2, weight_decay=1.0),
        "lr1e-3_wd0.1": dict(lr=1e-3, weight_decay=0.1),
        "lr3e-4_wd0.1": dict(lr=3e-4, weight_decay=0.1),
        # Regularizers on the lastingly collapsed low-LR setting.
        "lr3e-4+vocab_bonus0.5": dict(lr=3e-4, vocab_bonus=0.5),
        "lr3e-4+ls0.1": dict(lr=3e-4, label_smoothing=0.1),
        "lr3e-4+conf0.2": dict(lr=3e-4, confidence_penalty=0.2),
        "lr3e-4+maxsup.1-.2": dict(lr=3e-4, maxsup_start=0.1, maxsup_end=0.2),
        # A larger BPE vocabulary strengthens the frequent-token attractor (seeds/003).
        "lr1e-2_v2048": dict(lr=1e-2, vocab_size=2048),
        "lr3e-4_v2048": dict(lr=3e-4, vocab_size=2048),
    }),
    "smoke": (SMOKE_BASE, {
        "lr3e-3": dict(lr=3e-3, weight_decay=0.1),
        "lr1e-2": dict(lr=1e-2, weight_decay=0.1),
        "lr3e-2_wd1": dict(lr=3e-2, weight_decay=1.0),
        "lr3e-4": dict(lr=3e-4, weight_decay=0.1),
        "lr1e-4": dict(lr=1e-4, weight_decay=0.1),
        "lr1e-2_wd1": dict(lr=1e-2, weight_decay=1.0),
    }),
}


def _parse(value: str) -> object:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def run_setting(args: tuple[str, dict]) -> list[str]:
    name, config = args
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from trainables.bitnet_lm import BitNetLM

    t0 = time.perf_counter()
    lm = BitNetLM(config | {"threads": 1})
    rows = [f"{name:<22} init {time.perf_counter() - t0:5.1f}s"]
    for _ in range(config["max_iterations"]):
        t0 = time.perf_counter()
        m = lm.step()
        rows.append(
            f"{name:<22} {lm.steps:>5} {m['collapse/unique_tokens']:>6.0f} "
            f"{m['collapse/argmax_unique']:>7.0f} {m['val/loss']:>8.3f} "
            f"{m['collapse/distinct_2']:>6.2f} {time.perf_counter() - t0:>6.1f}"
        )
        print(rows[-1], flush=True)
    rows.append(f"{name:<22} sample: {lm.samples().splitlines()[0][:100]!r}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", choices=sorted(SUITES), default="main")
    ap.add_argument("--only", nargs="*", help="setting names to run (default: all)")
    ap.add_argument("--set", nargs="*", default=[], help="key=value overrides for all")
    ap.add_argument("--procs", type=int, default=2)
    a = ap.parse_args()
    base, settings = SUITES[a.suite]
    overrides = {k: _parse(v) for k, v in (kv.split("=", 1) for kv in a.set)}
    jobs = [(n, base | s | overrides) for n, s in settings.items() if not a.only or n in a.only]
    print(f"{'setting':<22} {'step':>5} {'uniq':>6} {'argmax':>7} {'val':>8} {'dist2':>6} "
          f"{'s/rep':>6}", flush=True)
    with mp.get_context("spawn").Pool(a.procs) as pool:
        results = pool.map(run_setting, jobs, chunksize=1)
    print("\n== table ==")
    for rows in results:
        print("\n".join(rows))


if __name__ == "__main__":
    main()
