"""Every scheduler the registry builds (spec/_schedulers.py SCHEDULERS) survives pickle, as Tune
saves it with the experiment, and decides after the round trip as it did before. A scheduler
added to the registry needs a scenario here (the test fails until it has one)."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler
from ray.tune.schedulers.pbt import _PBTTrialState

from collapsetune.spec import load_sweep
from collapsetune.spec._schedulers import SCHEDULERS

SECTIONS = {  # the smallest scheduler section of each kind
    "fifo": {"type": "fifo"},
    "asha": {"type": "asha", "grace_period": 2, "reduction_factor": 3},
    "pbt": {"type": "pbt", "mutable": ["lr"], "perturbation_interval": 2},
}


def _built(tmp_path: Path, name: str) -> TrialScheduler:
    data = {
        "name": "t", "trainable": "bitnet_lm", "objective": {"metric": "val/loss", "mode": "min"},
        "search_space": {"lr": {"loguniform": [1.0e-4, 1.0e-2]}}, "search": {"algorithm": "random"},
        "scheduler": SECTIONS[name], "max_iterations": 9,
        "collapse": [{"metric": "collapse/unique_tokens", "below": 8, "patience": 1, "grace": 1}],
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    spec = load_sweep(path)
    scheduler = spec.scheduler.build(spec)
    scheduler.set_search_properties(metric="objective", mode="min")  # what the Tuner does
    return scheduler


def _result(t: int, objective: float, status: str = "healthy") -> dict:
    return {"training_iteration": t, "objective": objective, "collapse.status": status}


def _trial(scheduler: TrialScheduler, trial_id: str) -> Trial:
    """`scheduler`'s own trial of that id (a restored scheduler holds copies)."""
    for trial in getattr(scheduler, "_trial_state", {}):
        if trial.trial_id == trial_id:
            return trial
    trial = Trial("__fake", trial_id=trial_id, stub=True, config={"lr": 1.0e-3})
    trial.create_placement_group_factory()  # as Tune does before it runs one: a trial without it cannot be unpickled
    return trial


def _fifo(scheduler):
    a = _trial(scheduler, "a")
    scheduler.on_trial_add(None, a)
    scheduler.on_trial_result(None, a, _result(1, 1.0))

    def decide(s):
        return s.on_trial_result(None, _trial(s, "a"), _result(2, 0.5))
    return decide, TrialScheduler.CONTINUE


def _asha(scheduler):
    # "a" collapses after the rung at report 2 (CollapseASHA forgets its rung value); "c" is
    # healthy there. A trial then reaching the rung is judged against "c" alone, and cut.
    trials = {i: _trial(scheduler, i) for i in "abc"}
    for trial in trials.values():
        scheduler.on_trial_add(None, trial)
    scheduler.on_trial_result(None, trials["a"], _result(2, 0.1))
    scheduler.on_trial_result(None, trials["a"], _result(3, 1.0e9, "collapsed"))
    scheduler.on_trial_result(None, trials["c"], _result(2, 1.0))

    def decide(s):
        return s.on_trial_result(None, trials["b"], _result(2, 3.0))  # ASHA keys its rungs by trial id
    return decide, TrialScheduler.STOP


def _pbt(scheduler):
    # A population as PBT would have recorded it (how tests/test_pbt.py builds one): the
    # collapsed trial has the best objective and a checkpoint, and is never the donor.
    for trial_id, objective, status in (("collapsed", 0.5, "collapsed"), ("donor", 1.0, "healthy"),
                                        ("sick", 2.0, "inconclusive")):
        trial = _trial(scheduler, trial_id)
        state = scheduler._trial_state[trial] = _PBTTrialState(trial)
        state.last_score, state.last_train_time, state.last_checkpoint = -objective, 4, f"ckpt-{trial_id}"
        scheduler._status[trial_id] = status

    def decide(s):
        donor = s._donor(None, _trial(s, "sick"))
        return donor.trial_id if donor else None
    return decide, "donor"


SCENARIOS: dict[str, Callable] = {"fifo": _fifo, "asha": _asha, "pbt": _pbt}


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_scheduler_decides_alike_after_pickle(tmp_path, name):
    assert name in SCENARIOS, f"scheduler {name!r} is registered but has no pickle scenario here"
    scheduler = _built(tmp_path, name)
    decide, expected = SCENARIOS[name](scheduler)
    restored = pickle.loads(pickle.dumps(scheduler))
    assert type(restored) is type(scheduler)
    assert decide(restored) == decide(scheduler) == expected


def test_restored_pbt_stops_a_collapsed_trial_whose_only_donor_diverged(tmp_path):
    # The verdicts PBT keeps (`_status`) come back with it: the donor is known to have
    # diverged, so the collapsed trial is stopped instead of copying it.
    scheduler = _built(tmp_path, "pbt")
    _pbt(scheduler)
    scheduler._status["donor"] = "diverged"
    restored = pickle.loads(pickle.dumps(scheduler))
    for s in (restored, scheduler):
        assert s.on_trial_result(None, _trial(s, "sick"), _result(5, 1.0e9, "collapsed")) == TrialScheduler.STOP
        assert s.unrescued == 1
