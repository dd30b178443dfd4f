"""benchmarks/gpu.py: says plainly when there is no GPU, and runs end to end on a Ray node
that declares GPUs (its trials then on the CPU), so it is ready for a machine with one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "gpu.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the script measures it")
def test_without_cuda_it_exits_saying_so(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "gpu.json")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "sees no CUDA device here" in done.stderr and "Run it on a machine with a GPU" in done.stderr
    assert not (tmp_path / "gpu.json").exists()


@pytest.mark.slow
def test_on_fake_gpus_it_measures_every_share_against_one_trial_per_gpu(tmp_path):
    out = tmp_path / "gpu.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--fake-gpus", "1", "--quick", "--models", "mop_clip",
                           "--shares", "1", "0.5", "--reports", "2", "--trials-per-gpu", "2", "--out", str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["model"], r["share"], r["trials"]) for r in rows] == [("mop_clip", 1.0, 2), ("mop_clip", 0.5, 2)]
    assert all(r["steps_per_s_per_trial"] > 0 and r["max_allocated_mib"] == 0 for r in rows)  # CPU: no GPU memory
    assert "| mop_clip | 0.5 | 2 |" in done.stdout and "x one per GPU" in done.stdout
