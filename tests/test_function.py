"""Function trainables (`trainable: module:train`) driven through CollapseTrainable in-process:
the same verdicts as the class wrapper they mirror, checkpoints and replays, and a loop that
ends whenever its trial does."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from collapsetune import session
from collapsetune.collapse import Below, Rule
from collapsetune.registry import has_state, resolve_trainable
from collapsetune.trainable import TrialPlan, make_trainable

E2E = Path(__file__).parent / "e2e"
RULE = Rule((Below("collapse/unique_tokens", 20),), patience=2, grace=1)
SHOWN = ("val/loss", "objective", "collapse.status", "collapse.reason", "collapse/detected", "samples")


@pytest.fixture(autouse=True)
def _trial_folders_in_tmp(tmp_path, monkeypatch):
    import ray.tune.trainable.trainable as module

    monkeypatch.setattr(module, "DEFAULT_STORAGE_PATH", str(tmp_path / "ray_results"))


def _trainable(wrapper: str, config: dict, trial_id: str | None = None):
    cls = make_trainable(TrialPlan(wrapper, (str(E2E),), (RULE,), "val/loss", "min"), "t")
    if trial_id is not None:  # what Tune hands a trainable about its trial (ray.tune.experiment.trial._TrialInfo)
        config = {**config, "__trial_info__": SimpleNamespace(trial_id=trial_id, trial_name=f"t_{trial_id}",
                                                              experiment_name="x", trial_resources=None)}
    return cls(config={"max_iterations": 6, **config})


def _loops() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "collapsetune-train"]


def _shown(result: dict) -> tuple:
    return tuple(result.get(k) for k in SHOWN)


@pytest.mark.parametrize("lr", [0.2, 0.01])
def test_a_function_is_judged_like_the_class_it_mirrors(lr):
    loop, cls = _trainable("outside_loop:train", {"lr": lr}), _trainable("outside_wrapper:Toy", {"lr": lr})
    try:
        got = [_shown(loop.train()) for _ in range(6)]
        assert got == [_shown(cls.train()) for _ in range(6)]
        assert ("collapsed" in {g[2] for g in got}) == (lr > 0.05)
    finally:
        loop.stop()
        cls.stop()
    assert not _loops()


def test_a_function_resolves_to_a_checkpointable_wrapper_named_after_it():
    wrapper = resolve_trainable("outside_loop:train", [E2E])
    assert wrapper.__name__ == "train" and has_state(wrapper)


@pytest.mark.parametrize("every", [1, 2])
def test_a_restored_trial_continues_from_its_checkpoint_and_shows_each_report_once(tmp_path, every):
    whole = _trainable("outside_loop:train", {"lr": 0.01, "checkpoint_every": every})
    expected = [whole.train()["val/loss"] for _ in range(6)]
    whole.stop()

    first = _trainable("outside_loop:train", {"lr": 0.01, "checkpoint_every": every})
    before = [first.train()["val/loss"] for _ in range(3)]
    saved = first.save(str(tmp_path / "ckpt"))
    first.stop()
    second = _trainable("outside_loop:train", {"lr": 0.01, "checkpoint_every": every})
    second.restore(saved)
    after = [second.train() for _ in range(3)]
    second.stop()
    # every=2: the checkpoint came with report 2, so the loop makes report 3 again, unseen.
    assert before + [r["val/loss"] for r in after] == expected
    assert [r["training_iteration"] for r in after] == [4, 5, 6]
    assert not _loops()


def test_a_copied_checkpoint_reaches_the_loop_with_its_own_config(tmp_path):
    donor = _trainable("outside_loop:train", {"lr": 0.01}, trial_id="d")
    for _ in range(3):
        donor.train()
    saved = donor.save(str(tmp_path / "ckpt"))
    donor.stop()
    copy = _trainable("outside_loop:train", {"lr": 0.2}, trial_id="a")  # PBT: another trial, a perturbed config
    copy.restore(saved)
    result = copy.train()
    copy.stop()
    assert result["training_iteration"] == 4 and result["pbt.donor"] == "d"
    assert result["samples"] == "the the the"  # this trial's lr, from the donor's report 4 on


def test_an_error_in_the_loop_fails_the_trial_with_it():
    trainable = _trainable("outside_loop:train", {"lr": 0.01, "fail_at": 2})
    trainable.train()
    with pytest.raises(RuntimeError, match="boom"):
        trainable.train()
    trainable.stop()


def test_a_loop_that_returns_early_fails_the_trial_saying_so():
    trainable = _trainable("outside_loop:train", {"lr": 0.01, "return_at": 2})
    trainable.train(), trainable.train()
    with pytest.raises(RuntimeError, match=r"train\(config\) returned after 2 report\(s\).*max_iterations"):
        trainable.train()
    trainable.stop()


def test_reusing_the_actor_ends_the_old_loop():
    trainable = _trainable("outside_loop:train", {"lr": 0.01})
    trainable.train()
    (old,) = _loops()
    assert trainable.reset_config({"max_iterations": 6, "lr": 0.2})
    assert not old.is_alive()
    assert trainable.train()["samples"] == "a varied sample at step 1"
    trainable.stop()
    assert not _loops()


def test_outside_a_sweep_report_does_nothing_and_there_is_no_checkpoint():
    assert session.get_checkpoint() is None
    session.report({"val/loss": 1.0}, checkpoint={"t": 1})


def test_report_refuses_what_is_not_a_dict():
    with pytest.raises(TypeError, match="dict of metric name to number, got float"):
        session.report(1.0)
    with pytest.raises(TypeError, match="checkpoint=.*got list"):
        session.report({"val/loss": 1.0}, checkpoint=[1])
