"""The kit owns the device and the precision: every built-in model runs where it is asked,
its checkpoints load onto any device, and bad requests fail with the reason.

CUDA cases are skipped, with the reason, on a machine without CUDA; they run where there is one.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from collapsetune.devices import autocast, check_device_fields, trial_device
from collapsetune.trainable import CHECKPOINT_FILE, _read_state, _write_state
from collapsetune.wrapper import TorchWrapper, _moved, _to_device
from trainables.audio_caption import AudioCaption
from trainables.bitnet_lm import BitNetLM
from trainables.mop_clip import MopClip

CUDA = torch.cuda.is_available()
NO_CUDA = "no CUDA device on this machine"
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason=NO_CUDA))]

# Each built-in model, tiny: a few seconds for all three on one CPU core.
BUILT_IN = {
    "bitnet_lm": (BitNetLM, dict(tokenizer="byte", d_model=16, n_layers=1, n_heads=2, context=16, batch_size=4,
                                 steps_per_report=2, gen_tokens=6, gen_prompts=3, max_iterations=4,
                                 decode="top_k", top_k=5)),
    "mop_clip": (MopClip, {"K": 4, "steps_per_report": 5, "batch_size": 32, "max_iterations": 4}),
    "audio_caption": (AudioCaption, {"n_clips": 48, "val_clips": 12, "steps_per_report": 3, "batch_size": 8,
                                     "max_iterations": 4, "hidden": 32, "embed_dim": 16, "specaugment": True,
                                     "scheduled_sampling": 0.5, "decoding": "top_p", "top_p": 0.9}),
}


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("COLLAPSETUNE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def tensors(wrapper: TorchWrapper) -> dict[str, torch.Tensor]:
    """Every tensor the trial trains with: parameters, optimizer moments and data attributes."""
    found = {f"param {n}": p for n, p in wrapper.model.named_parameters()}
    for i, state in enumerate(wrapper.optimizer.state.values()):
        found |= {f"optimizer {i} {k}": v for k, v in state.items() if torch.is_tensor(v) and k != "step"}
    for name, value in vars(wrapper).items():
        if torch.is_tensor(value):
            found[name] = value
    return found


def test_trial_device_cpu_and_auto_without_a_gpu():
    assert trial_device("cpu") == torch.device("cpu")
    assert trial_device("auto") == torch.device("cuda" if CUDA else "cpu")  # outside Ray: torch decides


@pytest.mark.skipif(CUDA, reason="this machine has CUDA: device cuda works here")
def test_device_cuda_without_a_gpu_says_why():
    with pytest.raises(RuntimeError, match="device: cuda, but torch sees no CUDA device here .* use device: auto"):
        trial_device("cuda")
    with pytest.raises(RuntimeError, match="device: cuda, but torch sees no CUDA device"):
        BitNetLM({**BUILT_IN["bitnet_lm"][1], "device": "cuda"})


@pytest.mark.parametrize("model", BUILT_IN)
@pytest.mark.parametrize(("device", "precision", "says"), [
    ("tpu", "fp32", "device.* one of auto, cpu, cuda, got 'tpu'"),
    ("auto", "fp8", "precision.* one of fp32, bf16, fp16, got 'fp8'"),
    ("cpu", "fp16", "precision fp16 needs a GPU"),
])
def test_every_builtin_config_checks_device_and_precision(model, device, precision, says):
    cls, _ = BUILT_IN[model]
    with pytest.raises(ValueError, match=says):
        cls.config_class(**{"device": device, "precision": precision})
    check_device_fields("auto", "fp16")  # fp16 is for a GPU, which auto may find


@pytest.mark.skipif(CUDA, reason="this machine has CUDA: fp16 runs on it")
def test_fp16_on_a_trial_that_lands_on_the_cpu_fails_before_any_work():
    with pytest.raises(RuntimeError, match="precision fp16 needs CUDA, but this trial runs on cpu"):
        MopClip({**BUILT_IN["mop_clip"][1], "precision": "fp16"})  # device auto fell back to cpu


def test_the_kit_moves_parameters_keeping_the_optimizer_on_them():
    # A meta tensor is not shallow-copy compatible with a CPU one, so Module.to makes new
    # Parameter objects, as a CPU -> CUDA move may: the optimizer must follow them.
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    moved = _to_device(model, optimizer, torch.device("meta"))
    params = [p for group in optimizer.param_groups for p in group["params"]]
    assert [id(p) for p in params] == [id(p) for p in moved.parameters()]
    assert {p.device.type for p in params} == {"meta"}


def test_the_kit_moves_tensor_and_module_attributes_and_their_containers():
    value = {"x": torch.zeros(2), "pair": (torch.ones(1), "text"), "terms": [nn.Linear(1, 1)], "n": 3}
    moved = _moved(value, torch.device("meta"))
    assert moved["x"].is_meta and moved["pair"][0].is_meta and moved["pair"][1] == "text"
    assert next(moved["terms"][0].parameters()).is_meta and moved["n"] == 3
    assert _moved("not a tensor", torch.device("meta")) == "not a tensor"


def test_keep_on_cpu_attributes_are_left_where_the_wrapper_put_them():
    cls, config = BUILT_IN["mop_clip"]

    class KeepsTrain(cls):
        keep_on_cpu = ("x_train",)

    wrapper = KeepsTrain(config)
    wrapper.device = torch.device("meta")  # a device this CPU machine has, to see what moves
    wrapper._move_attributes()
    assert wrapper.x_train.device.type == "cpu" and wrapper.x_val.is_meta and wrapper.y_train.is_meta


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("model", BUILT_IN)
def test_every_builtin_model_trains_and_evaluates_on_the_device_asked(model, device):
    cls, config = BUILT_IN[model]
    wrapper = cls({**config, "device": device})
    metrics = wrapper.step()
    assert wrapper.device.type == device
    wrong = {name: t.device.type for name, t in tensors(wrapper).items() if t.device.type != device}
    assert not wrong, wrong
    assert all(math.isfinite(v) for v in metrics.values()), metrics


@pytest.mark.skipif(not CUDA, reason=NO_CUDA)
@pytest.mark.parametrize("model", BUILT_IN)
def test_collapse_metrics_and_samples_agree_between_cpu_and_gpu(model):
    cls, config = BUILT_IN[model]
    cpu, gpu = cls({**config, "device": "cpu"}), cls({**config, "device": "cuda"})
    for _ in range(2):
        a, b = cpu.step(), gpu.step()
        assert a.keys() == b.keys()
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-3), key


@pytest.mark.parametrize("model", BUILT_IN)
def test_bf16_on_the_cpu_on_request_stays_close_to_fp32(model):
    cls, config = BUILT_IN[model]
    fp32, bf16 = cls({**config, "device": "cpu"}).step(), cls({**config, "device": "cpu", "precision": "bf16"}).step()
    assert bf16["val/loss"] == pytest.approx(fp32["val/loss"], rel=0.05)
    assert all(math.isfinite(v) for v in bf16.values()), bf16


@pytest.mark.parametrize("saved_on", DEVICES)
@pytest.mark.parametrize("loaded_on", DEVICES)
@pytest.mark.parametrize("model", BUILT_IN)
def test_a_checkpoint_saved_on_one_device_resumes_on_another(model, saved_on, loaded_on, tmp_path):
    """Through the trainable's own writer and reader, with map_location from the restoring
    trial's device: a GPU checkpoint resumes on a CPU-only node, a CPU one on a GPU."""
    cls, config = BUILT_IN[model]
    straight = cls({**config, "device": loaded_on})
    expected = [straight.step() for _ in range(4)][2:]

    first = cls({**config, "device": saved_on})
    first.step(), first.step()
    _write_state({"wrapper": first.state_dict()}, str(tmp_path / CHECKPOINT_FILE))
    second = cls({**config, "device": loaded_on})
    second.load_state_dict(_read_state(str(tmp_path), second.device)["wrapper"])
    wrong = {name: t.device.type for name, t in tensors(second).items() if t.device.type != loaded_on}
    assert not wrong, wrong  # parameters, Adam's moments, data: all where the trial runs
    assert second.generator.device.type == "cpu"  # batches drawn alike on every device
    resumed = [second.step(), second.step()]
    for want, got in zip(expected, resumed):
        for key in want:
            if saved_on == loaded_on:
                assert got[key] == want[key] or (math.isnan(got[key]) and math.isnan(want[key])), key
            else:
                assert got[key] == pytest.approx(want[key], rel=1e-3, abs=1e-3), key


def test_autocast_casts_to_bf16_on_the_cpu_and_leaves_fp32_alone():
    x = torch.randn(2, 3)
    with autocast(torch.device("cpu"), "fp32"):
        assert (x @ x.T).dtype == torch.float32
    with autocast(torch.device("cpu"), "bf16"):
        assert (x @ x.T).dtype == torch.bfloat16


def test_the_gpu_example_sweep_validates_and_a_gpu_only_precision_on_cpu_does_not(capsys):
    from collapsetune.cli import main

    sweep = str(Path(__file__).parents[1] / "sweeps" / "bitnet_lm_gpu.yaml")
    assert main(["validate", sweep]) == 0
    assert main(["validate", sweep, "--set", "config.device=cpu", "--set", "config.precision=fp16"]) == 2
    err = capsys.readouterr().err
    assert "bitnet_lm_gpu.yaml" in err and "precision fp16 needs a GPU" in err
