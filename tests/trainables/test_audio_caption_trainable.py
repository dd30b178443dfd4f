from __future__ import annotations

import copy

import pytest
import torch

from trainables.audio_caption import SAMPLES_FILE, WEIGHTS_FILE, AudioCaption, AudioCaptionTrainConfig
from tests.trainables.kept_wrapper import kept_and_rebuilt_steps

TINY = {"n_clips": 48, "val_clips": 12, "steps_per_report": 3, "batch_size": 8, "max_iterations": 2,
        "hidden": 32, "embed_dim": 16}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COLLAPSETUNE_CACHE", str(tmp_path / "cache"))


def test_step_reports_loss_quality_and_collapse_metrics():
    m = AudioCaption({**TINY, "pooling": "time_preserving", "attention": "additive", "specaugment": True,
                      "scheduled_sampling": 0.5, "label_smoothing": 0.1, "decoding": "top_p", "top_p": 0.9})
    out = m.step()
    assert set(out) == set(AudioCaption.reported_metrics)
    for key in ("train/loss", "val/loss", "val/bleu4", "val/cider_d", "collapse/unique_captions",
                "collapse/distinct_1", "collapse/distinct_2", "collapse/vocab_used"):
        assert key in out and out[key] == out[key], key
    assert 0 < out["collapse/unique_captions"] <= 1
    assert m.samples().count("ref:") == 8


def test_unknown_or_bad_config_is_an_error():
    with pytest.raises(ValueError, match="unknown audio_caption config key 'pooling_mode'"):
        AudioCaption({**TINY, "pooling_mode": "max"})
    with pytest.raises(ValueError, match="pooling"):
        AudioCaptionTrainConfig(pooling="mean")
    with pytest.raises(ValueError, match="strategy"):
        AudioCaptionTrainConfig(decoding="nucleus")
    with pytest.raises(ValueError, match="needs a checkpoint"):
        AudioCaptionTrainConfig(train=False)
    with pytest.raises(ValueError, match=r"dataset must be one of \['synthetic', 'synthetic_scenes'\] or the path "
                                         r"of a Clotho folder .*got 'synthetic_hard'"):
        AudioCaption({**TINY, "dataset": "synthetic_hard"})  # before any data is generated
    assert AudioCaption.config_class is AudioCaptionTrainConfig


def test_state_dict_round_trip_continues_identically():
    a = AudioCaption({**TINY, "specaugment": True, "scheduled_sampling": 0.5})
    a.step()
    state = copy.deepcopy(a.state_dict())  # live tensors otherwise: the next step changes them
    expected = a.step()
    b = AudioCaption({**TINY, "specaugment": True, "scheduled_sampling": 0.5})  # reseeds torch's global RNG
    b.load_state_dict(state)  # ... and puts back the one dropout was drawing from
    got = b.step()
    assert got["train/loss"] == pytest.approx(expected["train/loss"])
    assert got["val/cider_d"] == pytest.approx(expected["val/cider_d"])


def test_checkpoint_decoding_only_skips_training(tmp_path):
    trained = AudioCaption(TINY)
    before = trained.step()
    trained.write_artifacts(str(tmp_path))
    assert "generated:" in (tmp_path / SAMPLES_FILE).read_text()
    ckpt = str(tmp_path / WEIGHTS_FILE)
    again = AudioCaption({**TINY, "checkpoint": ckpt, "train": False, "max_iterations": 1})
    out = again.step()
    assert "train/loss" not in out  # nothing trained
    assert out["val/loss"] == pytest.approx(before["val/loss"], rel=1e-5)
    assert out["collapse/unique_captions"] == before["collapse/unique_captions"]
    weights = {k: v.clone() for k, v in again.model.state_dict().items()}
    beam = AudioCaption({**TINY, "checkpoint": ckpt, "train": False, "decoding": "diverse_beam",
                         "beam_size": 4, "beam_groups": 2, "diversity_penalty": 0.5})
    beam.step()
    assert all(torch.equal(weights[k], v) for k, v in beam.model.state_dict().items())
    with pytest.raises(ValueError, match="trained with"):
        AudioCaption({**TINY, "checkpoint": ckpt, "train": False, "pooling": "time_preserving"})


def test_scene_dataset_trains_and_reports():
    m = AudioCaption({**TINY, "dataset": "synthetic_scenes", "clip_seconds": 1.0})
    out = m.step()
    assert 0 < out["collapse/unique_captions"] <= 1 and out["val/loss"] == out["val/loss"]
    assert {"talking", "while"} <= set(m.vocab)  # the scene set's words, not the clean set's
    assert m.x_train.shape[-1] == 51  # 1 s of 20 ms frames


def test_audio_caption_reconfigured_in_place_trains_exactly_as_rebuilt():
    knobs = {"lr": 1e-3, "weight_decay": 1e-3, "label_smoothing": 0.1, "scheduled_sampling": 0.2,
             "specaugment": True, "decoding": "top_k", "top_k": 3}
    kept, step, expected = kept_and_rebuilt_steps(AudioCaption, TINY, knobs, kept={"lr": 5e-3})
    assert step == expected
    assert not kept.reconfigure({**TINY, **knobs, "hidden": 64})  # shapes the model
