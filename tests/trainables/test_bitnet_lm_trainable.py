from __future__ import annotations

import copy
import math

import pytest
import torch

from trainables.bitnet_lm import TOKEN_SHARES, BitNetLM
from tests.trainables.kept_wrapper import kept_and_rebuilt_steps

TINY = dict(tokenizer="byte", d_model=16, n_layers=1, n_heads=2, context=16, batch_size=4,
            steps_per_report=2, gen_tokens=6, gen_prompts=3, max_iterations=4)
KEYS = {"train/loss", "val/loss", "val/accuracy", "collapse/argmax_unique",
        "collapse/unique_tokens", "collapse/distinct_1", "collapse/distinct_2",
        "collapse/entropy", "collapse/repetition", "train/lr"}


def test_bitnet_lm_step_returns_all_keys_finite():
    lm = BitNetLM(TINY | dict(label_smoothing=0.1, maxsup_start=0.1, maxsup_end=0.2,
                              confidence_penalty=0.1, vocab_bonus=0.1, output_l2=1e-4))
    out = lm.step()
    assert set(out) == KEYS == set(BitNetLM.reported_metrics)
    assert all(isinstance(v, float) and math.isfinite(v) for v in out.values())
    assert "|||" in lm.samples()


def test_bitnet_lm_bpe_and_sampling_decode(tmp_path, monkeypatch):
    monkeypatch.setenv("COLLAPSETUNE_CACHE", str(tmp_path))
    lm = BitNetLM(TINY | dict(tokenizer="bpe", vocab_size=300, decode="top_p", top_p=0.9,
                              linear="float"))
    assert lm.model.lm_head.out_features == 300
    assert set(lm.step()) == KEYS


def test_bitnet_lm_state_dict_round_trip_gives_same_next_step(tmp_path):
    a = BitNetLM(TINY)
    a.step()
    path = tmp_path / "ckpt.pt"
    torch.save(a.state_dict(), path)
    expected = a.step()
    b = BitNetLM(TINY)  # fresh: without the state its next step would be the first one
    b.load_state_dict(torch.load(path, weights_only=True))
    assert b.step() == expected


def test_bitnet_lm_unknown_key_raises_naming_it():
    with pytest.raises(ValueError, match=r"'learning_rate'.*valid keys.*'lr'"):
        BitNetLM(TINY | {"learning_rate": 1e-3})


def test_bitnet_lm_divergence_reports_nan_without_crashing():
    lm = BitNetLM(TINY)
    with torch.no_grad():
        lm.model.lm_head.weight.fill_(float("nan"))
    out = lm.step()
    assert math.isnan(out["train/loss"]) and math.isnan(out["val/loss"])
    assert math.isnan(lm.step()["collapse/unique_tokens"])


def test_bitnet_lm_device_auto_is_cpu_without_a_gpu_and_bad_device_raises():
    lm = BitNetLM({**TINY, "device": "auto"})
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert lm.device.type == expected and next(lm.model.parameters()).device.type == expected
    assert lm.val_x.device.type == expected
    with pytest.raises(ValueError, match="'device' expects one of auto, cpu, cuda, got 'tpu'"):
        BitNetLM({**TINY, "device": "tpu"})


def test_bitnet_lm_write_artifacts_draws_token_shares(tmp_path):
    lm = BitNetLM(TINY)
    lm.step()
    lm.write_artifacts(str(tmp_path))
    assert (tmp_path / TOKEN_SHARES).read_bytes()[:4] == b"\x89PNG"


def test_bitnet_lm_reconfigured_in_place_trains_exactly_as_rebuilt():
    # A PBT copy onto an actor that holds a BitNetLM: the kept wrapper takes the copy's knobs
    # (reconfigure) and the donor's checkpoint, and must then train as a wrapper built afresh.
    knobs = dict(lr=1e-3, weight_decay=0.3, label_smoothing=0.1, confidence_penalty=0.05, decode="top_k", top_k=5)
    kept, step, expected = kept_and_rebuilt_steps(BitNetLM, TINY, knobs, donor=dict(lr=3e-3), kept=dict(lr=5e-3, seed=0))
    assert kept.optimizer.param_groups[0]["weight_decay"] == 0.3
    assert step == expected


def test_bitnet_lm_refuses_to_reconfigure_what_shapes_its_model_or_data():
    lm = BitNetLM(TINY)
    assert not lm.reconfigure(TINY | dict(d_model=32))
    assert not lm.reconfigure(TINY | dict(seed=1))  # its fixed evaluation inputs come from the seed
    assert lm.cfg.d_model == 16 and lm.cfg.seed == 0


def test_bitnet_lm_kept_for_a_diverged_checkpoint_shows_none_of_the_last_trials_text(tmp_path):
    # The kept wrapper's contract: reconfigure + load_state_dict leave it as a new one would.
    # A checkpoint whose weights are non-finite makes evaluate() skip generation; the kept
    # wrapper must not then report (samples) or draw (token shares) the previous trial's text.
    donor = BitNetLM(TINY)
    donor.step()
    state = donor.state_dict()
    state["model"] = {k: torch.full_like(v, math.nan) if v.is_floating_point() else v
                      for k, v in state["model"].items()}
    kept = BitNetLM(TINY | dict(lr=5e-3))
    kept.step()
    assert "|||" in kept.samples()  # the previous trial's continuations
    rebuilt = BitNetLM(TINY | dict(lr=1e-3))
    rebuilt.load_state_dict(copy.deepcopy(state))
    rebuilt.step()
    assert kept.reconfigure(TINY | dict(lr=1e-3))
    kept.load_state_dict(copy.deepcopy(state))
    assert math.isnan(kept.step()["collapse/unique_tokens"])
    assert kept.samples() == rebuilt.samples()
    assert kept._generated is None and rebuilt._generated is None  # no previous trial's bar in the picture
