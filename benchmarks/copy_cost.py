"""What one PBT copy costs a trial's actor: the wrapper built again, against the wrapper kept.

Under PBT, Tune pauses trials and resumes them (with a donor's checkpoint and perturbed knobs
after a copy) on the actors it has: `reset(config)`, then `restore(checkpoint)`. Before
issue 24 `CollapseTrainable.reset_config` built the wrapper again for every such resume (for
the LM: reading and tokenizing the corpus, building the model and its fixed evaluation
inputs); now a wrapper with `reconfigure` (every `TorchWrapper` with `retunable` fields)
keeps its model and data when only the sweep's `mutable` knobs differ, and takes the new
knobs before the checkpoint loads. Both sides here run the same copy in this process, driven
as Tune drives an actor it reuses (`reset`, `restore`):

  rebuild   the wrapper class with `reconfigure` taken away: built again, as before
  kept      the wrapper as shipped: reconfigured in place

One copy: a donor trained `--donor-reports` reports and saved; an actor that ran another
trial one report; then the actor's `reset` to the donor's config with `lr` x 1.2 (a perturbed
copy) and its `restore` of the donor's checkpoint. CPU seconds of this process (all its
threads) for that reset and restore, median over `--repeats` copies, the sides alternating;
each copy's next report is trained (not counted) to show the actor goes on from it.

Run:  python benchmarks/copy_cost.py [--sweep benchmarks/sweeps/bitnet_lm.yaml] [--repeats 7]
Prints a table and writes benchmarks/results/copy_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from trainables.bitnet_lm import BitNetLM  # noqa: E402


class RebuildingLM(BitNetLM):
    """BitNetLM without `reconfigure`: CollapseTrainable builds it again on every reset."""

    reconfigure = None


def _config(base: dict, trial_id: str, **knobs) -> dict:
    """A trial's config as Tune hands it to setup() or reset(): with its _TrialInfo."""
    info = SimpleNamespace(trial_id=trial_id, trial_name=f"copy_{trial_id}", experiment_name="copy_cost",
                           trial_resources=None)
    return {**base, **knobs, "__trial_info__": info}


def one_copy(cls: type, base: dict, folder: Path, donor_reports: int) -> dict:
    """CPU and wall seconds of one copy (reset + restore) on an actor of trainable `cls`."""
    donor = cls(config=_config(base, "donor", lr=3e-3))
    for _ in range(donor_reports):
        donor.train()
    saved = donor.save(str(folder / "donor"))
    actor = cls(config=_config(base, "actor", lr=1e-3))
    actor.train()
    cpu, wall = time.process_time(), time.perf_counter()
    actor.reset(_config(base, "actor", lr=3e-3 * 1.2))
    actor.restore(saved)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    after = actor.train()
    assert after["training_iteration"] == donor_reports + 1 and after["pbt.donor"] == "donor", after
    for trainable in (donor, actor):
        trainable.stop()
    return {"cpu_s": cpu, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default="benchmarks/sweeps/bitnet_lm.yaml")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--donor-reports", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/copy_cost.json"))
    args = parser.parse_args()

    import ray.tune.trainable.trainable as trainable_module

    from collapsetune.spec import load_sweep
    from collapsetune.trainable import TrialPlan, make_trainable

    spec = load_sweep(ROOT / args.sweep if not Path(args.sweep).is_absolute() else args.sweep)
    base = {**spec.config, "max_iterations": spec.max_iterations}
    mutable = ("lr", "weight_decay", "label_smoothing", "maxsup_start", "maxsup_end", "confidence_penalty",
               "vocab_bonus", "output_l2")  # benchmarks/rescue.py's, for the LM
    sides = {}
    for side, wrapper in (("rebuild", "copy_cost:RebuildingLM"), ("kept", "bitnet_lm")):
        plan = TrialPlan(wrapper, (str(ROOT / "benchmarks"),), spec.collapse, spec.objective.metric,
                         spec.objective.mode, mutable=mutable, grace_after_copy=1)
        sides[side] = make_trainable(plan, side)
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory() as tmp:
        trainable_module.DEFAULT_STORAGE_PATH = str(Path(tmp) / "ray_results")  # not ~/ray_results
        for repeat in range(args.repeats):
            order = list(sides) if repeat % 2 == 0 else list(reversed(sides))
            for side in order:
                folder = Path(tmp) / f"{side}_{repeat}"
                runs[side].append(one_copy(sides[side], base, folder, args.donor_reports))
    median = {side: statistics.median(r["cpu_s"] for r in rs) for side, rs in runs.items()}
    ratio = median["kept"] / median["rebuild"]
    print(f"one PBT copy on {args.sweep} ({args.repeats} copies per side, median CPU-s of reset + restore):")
    for side, rs in runs.items():
        print(f"  {side:8s} {median[side]:.3f} CPU-s  (wall {statistics.median(r['wall_s'] for r in rs):.3f} s)")
    print(f"  kept / rebuild: {ratio:.3f}")
    out = {"command": " ".join(["python", *sys.argv]), "sweep": args.sweep, "repeats": args.repeats,
           "donor_reports": args.donor_reports, "median_cpu_s": median, "ratio_kept_to_rebuild": ratio,
           "runs": runs, "machine": platform.node(), "cpus": os.cpu_count(),
           "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
