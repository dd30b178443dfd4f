"""Fractional GPUs on a Ray node that declares two GPUs (Ray lets a CPU machine say so).

Real sweeps, through `run_sweep`: a probe wrapper (tests/fixtures/gpu_probe.py) records what
each trial was given, and claims a slot on its GPU with an exclusive file create, so that a
GPU holding more trials at once than their shares allow is caught whatever the timing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import ray
import torch

from collapsetune.launch import run_sweep
from collapsetune.spec import load_sweep

HERE = Path(__file__).parent
GPUS = 2


@pytest.fixture(scope="module")
def fake_gpus():
    """A private Ray of 4 CPUs and 2 (declared) GPUs; run_sweep uses the Ray it finds."""
    ray.init(address="local", num_cpus=4, num_gpus=GPUS, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def sweep(tmp_path: Path, trainable: str, config: dict, gpu: float, num_samples: int, cpu: float = 0.5,
          max_iterations: int = 3) -> Path:
    folder = tmp_path / "sweeps"
    folder.mkdir(exist_ok=True)
    keys = {
        "name": "gpu-share",
        "trainable": trainable,
        "config": config,
        "search_space": {"lr": {"loguniform": [1.0e-3, 1.0e-2]}},
        "objective": {"metric": "val/loss", "mode": "min"},
        "max_iterations": max_iterations,
        "num_samples": num_samples,
        "search": {"algorithm": "random", "seed": 0},
        "scheduler": {"type": "fifo"},
        "collapse": [],
        "resources": {"cpu": cpu, "gpu": gpu},
        "storage": str(tmp_path / "results"),
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
    }
    path = folder / "gpu.yaml"
    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in keys.items()))
    return path


@pytest.mark.slow  # a real sweep of 4 trials for each share
@pytest.mark.parametrize("share", [1.0, 0.5, 0.25])
def test_each_trial_sees_only_its_own_gpu_and_no_gpu_holds_more_than_its_shares(share, tmp_path, fake_gpus):
    (tmp_path / "sweeps").mkdir()
    shutil.copy(HERE / "fixtures" / "gpu_probe.py", tmp_path / "sweeps")
    trials = 4
    outcome = run_sweep(load_sweep(sweep(tmp_path, "gpu_probe:GpuProbe", {"folder": str(tmp_path), "share": share},
                                         gpu=share, num_samples=trials)))
    assert (outcome.trials, outcome.errored, outcome.unfinished) == (trials, 0, 0)

    records = [json.loads(line) for line in (tmp_path / "trials.jsonl").read_text().splitlines()]
    # Tune may build a trial's wrapper in an actor it then drops for a reused one: every build
    # is checked (it held its GPU share too), and every trial was built.
    assert len({r["lr"] for r in records}) == trials, records
    for r in records:
        assert len(r["gpu_ids"]) == 1 and r["gpu_ids"][0] in {str(i) for i in range(GPUS)}, r  # one GPU, its own
        assert r["visible"] == r["gpu_ids"][0], r  # CUDA_VISIBLE_DEVICES shows it that GPU alone
        assert r["slot"] is not None, f"a GPU held more than {round(1 / share)} trials of share {share} at once: {r}"
        # device auto: Ray gave a GPU, torch sees no CUDA on this machine, so the CPU
        assert r["device"] == ("cuda" if torch.cuda.is_available() else "cpu"), r


BUILT_IN = {
    "bitnet_lm": dict(tokenizer="byte", d_model=16, n_layers=1, n_heads=2, context=16, batch_size=4,
                      steps_per_report=2, gen_tokens=6, gen_prompts=3),
    "mop_clip": {"K": 4, "steps_per_report": 5, "batch_size": 32},
    "audio_caption": {"n_clips": 48, "val_clips": 12, "steps_per_report": 3, "batch_size": 8, "hidden": 32,
                      "embed_dim": 16},
}


@pytest.mark.slow
@pytest.mark.parametrize("model", BUILT_IN)
def test_a_fractional_gpu_sweep_of_each_builtin_model_runs_to_the_end(model, tmp_path, fake_gpus):
    outcome = run_sweep(load_sweep(sweep(tmp_path, model, {**BUILT_IN[model], "device": "auto"}, gpu=0.25,
                                         num_samples=2, max_iterations=2)))
    assert (outcome.trials, outcome.errored, outcome.unfinished) == (2, 0, 0)
    reports = [json.loads(line) for p in Path(outcome.path).glob("*/result.json") for line in p.read_text().splitlines()]
    assert sorted(r["training_iteration"] for r in reports) == [1, 1, 2, 2]
