"""The built-in wrappers, each reporting its GPU memory too (benchmarks/gpu.py).

A subclass per model adds `gpu/max_allocated_mib` (torch's peak allocation in this trial's
process since the trial began) and `gpu/reserved_mib` (what torch's caching allocator holds,
what other trials on the same GPU cannot use); both 0 on a CPU trial.
"""

from __future__ import annotations

import torch

from trainables.audio_caption import AudioCaption
from trainables.bitnet_lm import BitNetLM
from trainables.mop_clip import MopClip

GPU_KEYS = ("gpu/max_allocated_mib", "gpu/reserved_mib")


class _Measured:
    def __init__(self, config: dict) -> None:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()  # a reused worker's previous trial does not count
        super().__init__(config)

    def step(self) -> dict[str, float]:
        metrics = super().step()
        cuda = self.device.type == "cuda"
        return metrics | {
            "gpu/max_allocated_mib": torch.cuda.max_memory_allocated(self.device) / 2**20 if cuda else 0.0,
            "gpu/reserved_mib": torch.cuda.memory_reserved(self.device) / 2**20 if cuda else 0.0,
        }


class MeasuredBitNetLM(_Measured, BitNetLM):
    reported_metrics = (*BitNetLM.reported_metrics, *GPU_KEYS)


class MeasuredMopClip(_Measured, MopClip):
    reported_metrics = (*MopClip.reported_metrics, *GPU_KEYS)


class MeasuredAudioCaption(_Measured, AudioCaption):
    reported_metrics = (*AudioCaption.reported_metrics, *GPU_KEYS)
