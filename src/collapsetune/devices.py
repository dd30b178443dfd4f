"""Where a trial's tensors live and in what precision: one home for the ``device`` and
``precision`` config keys every built-in model shares (``TorchWrapper`` reads them).

``device``:
    ``auto`` (the default) is the GPU Ray gave the trial when torch sees CUDA and Ray gave the
    trial a GPU share (``resources: {gpu: 0.25}`` is one), else the CPU. ``cuda`` insists on the
    GPU and fails with the reason when there is none; ``cpu`` never uses one. Ray sets
    ``CUDA_VISIBLE_DEVICES`` to the trial's own GPU, so ``cuda`` (device 0 in the trial's
    process) is that GPU, also when four trials share it at 0.25 each.
``precision``:
    ``fp32`` (the default), ``bf16`` (autocast; on CPU too, on request) or ``fp16`` (autocast
    with gradient scaling; CUDA only).

Nothing here imports Ray: outside a Ray worker (a test, a notebook) ``auto`` uses CUDA
whenever torch sees it.

Example:
    >>> trial_device("cpu")
    device(type='cpu')
    >>> check_device_fields("cpu", "fp16")
    Traceback (most recent call last):
    ...
    ValueError: precision fp16 needs a GPU (device: cuda or auto); on cpu use fp32 or bf16
"""

from __future__ import annotations

import contextlib
import os
import sys

import torch

__all__ = ["DEVICES", "PRECISIONS", "autocast", "check_device_fields", "ray_gpu_ids", "trial_device"]

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_device_fields(device: str, precision: str) -> None:
    """The checks a config class runs on its ``device`` and ``precision`` fields."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and device == "cpu":
        raise ValueError("precision fp16 needs a GPU (device: cuda or auto); on cpu use fp32 or bf16")


def ray_gpu_ids() -> list[str] | None:
    """The GPU ids Ray assigned to this process, or None outside a Ray worker.

    Ray is asked only when this process already imported it: a wrapper used on its own
    never starts or imports Ray."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    return [str(i) for i in ray.get_gpu_ids()]


def trial_device(requested: str = "auto") -> torch.device:
    """The device a trial's model, optimizer state, batches and evaluation go to.

    Raises:
        RuntimeError: ``cuda`` was asked for and there is no GPU for this trial.
    """
    check_device_fields(requested, "fp32")
    if requested == "cpu":
        return torch.device("cpu")
    gpus = ray_gpu_ids()
    cuda = torch.cuda.is_available()
    if requested == "auto":
        return torch.device("cuda" if cuda and gpus != [] else "cpu")
    if gpus == []:
        raise RuntimeError("device: cuda, but Ray gave this trial no GPU; set resources: {gpu: 1} "
                           "(or a fraction such as 0.25) in the sweep, or device: auto")
    if not cuda:
        seen = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise RuntimeError(f"device: cuda, but torch sees no CUDA device here (torch {torch.__version__}, "
                           f"built for CUDA {torch.version.cuda}; CUDA_VISIBLE_DEVICES={seen!r}, Ray's GPU ids "
                           f"{gpus}); install a CUDA build of torch on the workers, or use device: auto")
    return torch.device("cuda")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``bf16`` / ``fp16`` on ``device``; a no-op for ``fp32``."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise RuntimeError(f"precision fp16 needs CUDA, but this trial runs on {device.type}; "
                           "use fp32 or bf16, or give the trial a GPU")
    return torch.autocast(device.type, dtype=_DTYPES[precision])
