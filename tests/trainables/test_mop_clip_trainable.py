"""The mop_clip wrapper: contract, metrics, checkpoint round trip, pictures."""

from __future__ import annotations

import io

import pytest
import torch

from trainables.mop_clip import SUBPROMPT_IMAGES, SUBPROMPT_SIMILARITY, MopClip
from tests.trainables.kept_wrapper import kept_and_rebuilt_steps

SMALL = {"K": 4, "steps_per_report": 5, "batch_size": 32, "max_iterations": 3}


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("COLLAPSETUNE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def test_mop_clip_step_reports_losses_accuracy_and_collapse_metrics():
    out = MopClip(SMALL).step()
    assert set(out) == set(MopClip.reported_metrics)
    for key in ("train/loss", "val/loss", "val/accuracy", "collapse/subprompt_cos_max",
                "collapse/subprompt_cos_mean", "collapse/assign_max_share", "collapse/assign_entropy",
                "collapse/dead_subprompts"):
        assert isinstance(out[key], float), key
    assert 0.0 <= out["collapse/assign_entropy"] <= 1.0
    assert 0.25 <= out["collapse/assign_max_share"] <= 1.0


def test_mop_clip_unknown_key_is_an_error_naming_it():
    with pytest.raises(ValueError, match="'tau_ned'"):
        MopClip({**SMALL, "tau_ned": 0.1})


def test_mop_clip_tau_reaches_tau_end_at_the_horizon():
    m = MopClip({**SMALL, "tau_end": 0.2})
    taus = [m.step()["train/tau"] for _ in range(3)]
    assert taus[-1] == pytest.approx(0.2) and taus[0] > taus[-1]


def test_mop_clip_state_dict_round_trip_with_weights_only():
    a = MopClip(SMALL)
    a.step()
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = MopClip(SMALL)
    b.load_state_dict(torch.load(buf, weights_only=True))
    assert a.step() == pytest.approx(b.step())


def test_mop_clip_write_artifacts_draws_both_pictures(tmp_path):
    m = MopClip(SMALL)
    m.step()
    m.write_artifacts(str(tmp_path))
    for name in (SUBPROMPT_IMAGES, SUBPROMPT_SIMILARITY):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_mop_clip_reads_a_features_file(tmp_path):
    from collapsetune.data.features import build_digits_features, save_features

    path = save_features(build_digits_features(), tmp_path / "digits.npz")
    out = MopClip({**SMALL, "features": str(path)}).step()
    assert out["val/accuracy"] > 0.5
    with pytest.raises(ValueError, match="only apply to the built-in"):
        MopClip({**SMALL, "features": str(path), "feature_cone": 1.0})


def test_mop_clip_reconfigured_in_place_trains_exactly_as_rebuilt():
    knobs = dict(lr=2e-3, tau_end=0.3, diversity_loss_weight=0.1, entropy_loss_weight=0.01)
    kept, step, expected = kept_and_rebuilt_steps(MopClip, SMALL, knobs, kept=dict(lr=1e-2))
    assert step == expected
    assert not kept.reconfigure(SMALL | knobs | dict(K=8))
