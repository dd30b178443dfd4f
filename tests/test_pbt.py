"""Collapse-aware PBT: its sweep-file section and the scheduler's choices (who may be copied,
who is rescued, where perturbed knobs may go). tests/e2e/test_pbt_sweep.py runs it under Tune."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
import yaml
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler
from ray.train import Checkpoint
from ray.train._internal.session import _FutureTrainingResult, _TrainingResult
from ray.tune.schedulers.pbt import _PBTTrialState

from collapsetune.schedulers import CollapsePBT
from collapsetune.spec import load_sweep
from tests.test_spec_wrapper import error

PBT = {"type": "pbt", "mutable": ["lr", "label_smoothing"]}


def sweep(tmp_path: Path, trainable: str = "bitnet_lm", **changes) -> Path:
    data = {
        "name": "t", "trainable": trainable, "objective": {"metric": "val/loss", "mode": "min"},
        "search_space": {"lr": {"loguniform": [1.0e-4, 1.0e-2]}, "label_smoothing": {"choice": [0.0, 0.1]},
                         "d_model": 32},
        "search": {"algorithm": "random"}, "scheduler": PBT, "max_iterations": 10,
        "collapse": [{"metric": "collapse/unique_tokens", "below": 8, "patience": 2, "grace": 3}],
        **changes,
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_pbt_sweep_builds_collapse_pbt_with_the_search_spaces_bounds(tmp_path):
    spec = load_sweep(sweep(tmp_path))
    assert spec.scheduler.rescues_collapsed and spec.scheduler.mutable == ("lr", "label_smoothing")
    scheduler = spec.scheduler.build(spec)
    assert isinstance(scheduler, CollapsePBT)
    assert scheduler._limits == {"lr": (1.0e-4, 1.0e-2)}  # choices move along their list instead
    assert scheduler._hyperparam_mutations["label_smoothing"] == [0.0, 0.1]
    # After a copy the rule's grace 3 is cut to grace_after_copy 1: with patience 2 it can
    # judge a copy from its third report, so a donor needs 3 reports left.
    assert (scheduler._max_t, scheduler._settle) == (10, 3)


@pytest.mark.parametrize(("changes", "says"), [
    ({"scheduler": {**PBT, "mutable": ["lr", "label_smothing"]}},
     "scheduler.mutable[1]: 'label_smothing' is not a search_space key (did you mean 'label_smoothing'?)"),
    ({"scheduler": {**PBT, "mutable": ["d_model"]}}, "scheduler.mutable[0]: 'd_model' is a constant"),
    ({"scheduler": {**PBT, "mutable": []}}, "scheduler.mutable: expected a non-empty list"),
    ({"search": {"algorithm": "optuna"}}, "search.algorithm: scheduler pbt makes the trials' configs itself"),
    ({"scheduler": {**PBT, "perturbation_interval": 11}}, "scheduler.perturbation_interval: must be <= max_iterations (10)"),
    ({"scheduler": {**PBT, "quantile_fraction": 0.6}}, "scheduler.quantile_fraction: must be <= 0.5"),
    ({"scheduler": {**PBT, "rescue_toward": {"weight_decay": "up"}}},
     "sweep.yaml: scheduler.rescue_toward.weight_decay: 'weight_decay' is not in mutable (lr, label_smoothing); "
     "expected mutable knobs, each up or down"),
    ({"scheduler": {**PBT, "rescue_toward": {"lr": "lower"}}},
     "sweep.yaml: scheduler.rescue_toward.lr: expected one of up, down, got 'lower'"),
    ({"scheduler": {**PBT, "rescue_toward": ["lr"]}},
     "sweep.yaml: scheduler.rescue_toward: expected a mapping, got ['lr']"),
    ({"scheduler": {**PBT, "rescue": False, "rescue_toward": {"lr": "down"}}},
     "sweep.yaml: scheduler.rescue_toward: moves knobs on a rescue, but rescue is false; expected rescue: true"),
    # Ray's explore draws random.choice(perturbation_factors): [] passed and the sweep died
    # with an IndexError at its first perturbation, trials already run.
    ({"scheduler": {**PBT, "perturbation_factors": []}},
     "sweep.yaml: scheduler.perturbation_factors: expected a non-empty list of numbers > 0, e.g. [1.2, 0.8]"),
    ({"scheduler": {**PBT, "perturbation_factors": [0.8, 0.9], "rescue_toward": {"lr": "up"}}},
     "sweep.yaml: scheduler.rescue_toward.lr: up multiplies by the largest perturbation factor (0.9), which "
     "is not > 1; expected a factor > 1 in perturbation_factors"),
])
def test_pbt_mistakes_are_named_by_key(tmp_path, changes, says):
    assert says in error(sweep(tmp_path, **changes))


def test_rescue_toward_on_a_choice_needs_no_factor_past_1(tmp_path):
    """A choice moves one neighbour along its list, whatever the factors: factors all below 1
    must not refuse `up` on a choice knob (they only scale numbers)."""
    spec = load_sweep(sweep(tmp_path, scheduler={**PBT, "perturbation_factors": [0.8, 0.9],
                                                 "rescue_toward": {"label_smoothing": "up"}}))
    assert spec.scheduler.rescue_toward == {"label_smoothing": "up"}


def test_rescue_toward_on_a_descending_numeric_choice_is_refused(tmp_path):
    """`up` moves a choice to the next value in its list: on [0.2, 0.1, 0.0] that lowers the
    knob, the opposite of what `up` says. Refused before any trial, naming the key."""
    message = error(sweep(tmp_path, search_space={"lr": {"loguniform": [1.0e-4, 1.0e-2]},
                                                  "label_smoothing": {"choice": [0.2, 0.1, 0.0]}, "d_model": 32},
                          scheduler={**PBT, "rescue_toward": {"label_smoothing": "up"}}))
    assert ("sweep.yaml: scheduler.rescue_toward.label_smoothing: up moves a choice to the next value in its "
            "list, but search_space.label_smoothing lists [0.2, 0.1, 0.0], not ascending; expected its "
            "numbers from smallest to largest") in message


def test_rescue_toward_on_a_range_below_0_is_refused(tmp_path):
    """`up` scales a number by the largest factor: a negative value (uniform [-1, 1]) goes
    further down. Refused before any trial, naming the key."""
    message = error(sweep(tmp_path, search_space={"lr": {"loguniform": [1.0e-4, 1.0e-2]},
                                                  "label_smoothing": {"uniform": [-0.1, 0.2]}, "d_model": 32},
                          scheduler={**PBT, "rescue_toward": {"label_smoothing": "up"}}))
    assert ("sweep.yaml: scheduler.rescue_toward.label_smoothing: up scales the knob by a perturbation factor, "
            "which moves a negative value the other way, and search_space.label_smoothing reaches -0.1; "
            "expected a range of numbers >= 0") in message


def test_rescue_toward_reaches_the_scheduler(tmp_path):
    spec = load_sweep(sweep(tmp_path, scheduler={**PBT, "rescue_toward": {"label_smoothing": "up", "lr": "down"}}))
    scheduler = spec.scheduler.build(spec)
    assert scheduler._rescue_toward == {"label_smoothing": "up", "lr": "down"}
    assert spec.scheduler.to_yaml()["rescue_toward"] == {"label_smoothing": "up", "lr": "down"}


def test_pbt_needs_a_wrapper_with_state(tmp_path):
    (tmp_path / "stateless.py").write_text(
        "class Toy:\n    def __init__(self, config): pass\n    def step(self): return {'val/loss': 1.0}\n")
    sys.modules.pop("stateless", None)
    try:
        message = error(sweep(tmp_path, "stateless:Toy", collapse=[],
                              search_space={"lr": {"uniform": [0.1, 1.0]}}, scheduler={**PBT, "mutable": ["lr"]}))
    finally:
        sys.modules.pop("stateless", None)
    assert "scheduler.type: pbt copies one trial's checkpoint into another, but Toy has no state_dict()" in message


# --- the scheduler's choices, on stub trials (no Tune loop) -------------------------------


def _pbt(**kwargs) -> CollapsePBT:
    from ray import tune

    scheduler = CollapsePBT(time_attr="training_iteration", perturbation_interval=2,
                            hyperparam_mutations={"lr": tune.loguniform(1e-3, 1e-1)}, limits={"lr": (1e-3, 1e-1)},
                            quantile_fraction=0.5, max_t=12, settle=4, **kwargs)
    scheduler.set_search_properties(metric="objective", mode="min")
    return scheduler


def _population(scheduler: CollapsePBT, *members: tuple[str, float, str, int]) -> dict[str, Trial]:
    """Trials with (id, objective, verdict, report), as PBT would have recorded them; each
    has a checkpoint to copy."""
    trials = {}
    for trial_id, objective, status, report in members:
        trial = Trial("__fake", trial_id=trial_id, stub=True, config={"lr": 0.01})
        state = scheduler._trial_state[trial] = _PBTTrialState(trial)
        state.last_score, state.last_train_time, state.last_checkpoint = -objective, report, f"ckpt-{trial_id}"
        scheduler._status[trial_id] = status
        trials[trial_id] = trial
    return trials


def test_collapsed_trials_are_never_copied_even_with_the_best_objective():
    scheduler = _pbt()
    _population(scheduler, ("collapsing", 0.1, "collapsed", 4), ("good", 1.0, "healthy", 4),
                ("fair", 2.0, "healthy", 4), ("poor", 3.0, "healthy", 4))
    lower, upper = scheduler._quantiles()
    assert [t.trial_id for t in upper] == ["good"]  # the collapsed trial's loss is lowest
    assert "collapsing" not in [t.trial_id for t in upper]


def test_the_rescue_donor_is_healthy_else_the_best_still_undecided_trial():
    scheduler = _pbt()
    trials = _population(scheduler, ("rescued", 1e9, "collapsed", 5), ("undecided", 1.0, "inconclusive", 4),
                         ("healthy", 2.0, "healthy", 4), ("collapsed", 0.5, "collapsed", 4))
    assert scheduler._donor(None, trials["rescued"]).trial_id == "healthy"
    scheduler._status["healthy"] = "diverged"
    assert scheduler._donor(None, trials["rescued"]).trial_id == "undecided"


def test_a_donor_too_close_to_the_end_for_the_rules_to_judge_the_copy_is_not_used():
    scheduler = _pbt()  # max_t 12, settle 4: a donor past report 8 leaves too few reports
    trials = _population(scheduler, ("rescued", 1e9, "collapsed", 9), ("late", 1.0, "healthy", 9))
    assert scheduler._donor(None, trials["rescued"]) is None
    assert scheduler._quantiles() == ([], [])


def test_a_donor_whose_checkpoint_is_too_late_is_not_used():
    # PBT scored the donor at report 4, but the checkpoint it would hand over is from report 9.
    scheduler = _pbt()
    trials = _population(scheduler, ("rescued", 1e9, "collapsed", 9), ("donor", 1.0, "healthy", 4))
    scheduler._trial_state[trials["donor"]].last_result = {"training_iteration": 9}
    assert scheduler._donor(None, trials["rescued"]) is None
    scheduler._trial_state[trials["donor"]].last_result = {"training_iteration": 8}  # 4 reports left
    assert scheduler._donor(None, trials["rescued"]).trial_id == "donor"


def test_a_collapsed_trial_with_no_donor_is_stopped():
    scheduler = _pbt()
    trials = _population(scheduler, ("alone", 1.0, "inconclusive", 3))
    result = {"training_iteration": 6, "objective": 1e9, "collapse.status": "collapsed"}
    assert scheduler.on_trial_result(None, trials["alone"], result) == TrialScheduler.STOP
    assert scheduler.unrescued == 1


def test_perturbed_values_stay_inside_their_search_space():
    scheduler = _pbt()
    trials = _population(scheduler, ("a", 1.0, "healthy", 4), ("b", 2.0, "healthy", 4))
    random.seed(0)
    seen = []
    for start in (1e-3, 1e-1):  # at each bound, x1.2 or x0.8 steps out half the time
        trials["a"].config["lr"] = start
        seen += [scheduler._get_new_config(trials["b"], trials["a"])[0]["lr"] for _ in range(50)]
    assert all(1e-3 <= lr <= 1e-1 for lr in seen)
    assert 1e-3 in seen and 1e-1 in seen  # clipped, not dropped


def test_pbt_gets_its_whole_population_at_once(tmp_path):
    # Tune's random search hands out trials as slots free up; PBT must see every member of
    # its population (it runs them in turns), or it compares only the two running now.
    from collapsetune.launch import make_searcher

    pbt = load_sweep(sweep(tmp_path, num_samples=10))
    assert make_searcher(pbt, concurrency=2).max_concurrent == 0  # 0: no limit
    asha = load_sweep(sweep(tmp_path, num_samples=10, scheduler={"type": "asha", "grace_period": 5}))
    assert make_searcher(asha, concurrency=2).max_concurrent == 2


# --- a donor is judged on the report whose checkpoint is copied ----------------------------


@pytest.fixture(scope="module")
def ray_local():
    """A small local Ray, for the futures PBT resolves a donor's scheduled save through."""
    import ray

    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _saving(tmp_path: Path, report: int, status: str) -> _FutureTrainingResult:
    """A save PBT scheduled on a running trial, resolving to the trial's checkpoint of `report`
    with that report's result (what Ray's Trainable.save returns: its last result)."""
    import ray

    folder = tmp_path / f"checkpoint_{report}"
    folder.mkdir()
    saved = _TrainingResult(checkpoint=Checkpoint.from_directory(str(folder)),
                            metrics={"training_iteration": report, "objective": 1e9, "collapse.status": status})
    return _FutureTrainingResult(ray.put(saved))


def test_a_rescue_never_copies_a_checkpoint_whose_report_collapsed_in_the_same_round(tmp_path, ray_local):
    # The sweep: "fast" was healthy at report 5 when PBT asked it to save, but its
    # actor was already training report 6, so the save holds report 6, the very report on
    # which it collapsed; that result is still queued behind the rescue that wants a donor.
    scheduler = _pbt()
    trials = _population(scheduler, ("rescued", 1e9, "collapsed", 5), ("fast", 0.5, "healthy", 5),
                         ("steady", 1.0, "healthy", 4))
    scheduler._trial_state[trials["fast"]].last_checkpoint = _saving(tmp_path, 6, "collapsed")
    assert scheduler._donor(None, trials["rescued"]).trial_id == "steady"


def test_pbt_never_exploits_a_donor_whose_checkpointed_report_collapsed(tmp_path, ray_local):
    # Ray's own round: "poor" is in the bottom quantile and copies "fast" from the top one;
    # the save of "fast" resolves to its collapsed report. "poor" keeps its own weights.
    scheduler = _pbt()
    trials = _population(scheduler, ("fast", 0.5, "healthy", 5), ("poor", 3.0, "healthy", 5))
    scheduler._trial_state[trials["fast"]].last_checkpoint = _saving(tmp_path, 6, "collapsed")
    scheduler._checkpoint_or_exploit(trials["poor"], None, [trials["fast"]], [trials["poor"]])
    assert trials["poor"].config == {"lr": 0.01} and scheduler._num_perturbations == 0


# --- a rescue moves the sweep's anti-collapse knobs their fixing way ------------------------


def _rescue(scheduler: CollapsePBT) -> tuple[Trial, Trial]:
    """A collapsed trial rescued from a healthy donor; returns (rescued, donor). The rescued
    trial is paused (synch PBT), so the exploit needs no controller."""
    trials = _population(scheduler, ("rescued", 1e9, "collapsed", 5), ("donor", 1.0, "healthy", 4))
    trials["donor"].config.update(lr=0.01, weight=0.1)
    rescued = trials["rescued"]
    rescued.status = Trial.PAUSED
    result = {"training_iteration": 5, "objective": 1e9, "collapse.status": "collapsed"}
    assert scheduler.on_trial_result(None, rescued, result) == TrialScheduler.NOOP
    return rescued, trials["donor"]


def test_a_rescue_moves_the_declared_knobs_in_their_fixing_direction():
    from ray import tune

    scheduler = CollapsePBT(time_attr="training_iteration", perturbation_interval=2, synch=True, log_config=False,
                            hyperparam_mutations={"lr": tune.loguniform(1e-3, 1e-1), "weight": [0.0, 0.1, 1.0]},
                            limits={"lr": (1e-3, 1e-1)}, quantile_fraction=0.5, max_t=12, settle=4,
                            rescue_toward={"lr": "down", "weight": "up"}, perturbation_factors=(1.2, 0.5))
    scheduler.set_search_properties(metric="objective", mode="min")
    rescued, donor = _rescue(scheduler)
    assert scheduler.rescued == 1
    assert rescued.config["lr"] == pytest.approx(0.005) and rescued.config["weight"] == 1.0
    assert donor.config == {"lr": 0.01, "weight": 0.1}  # the donor keeps its own


def test_without_rescue_toward_a_rescue_perturbs_at_random_as_before():
    from ray import tune

    moved = set()
    for seed in range(20):
        random.seed(seed)
        scheduler = CollapsePBT(time_attr="training_iteration", perturbation_interval=2, synch=True, log_config=False,
                                hyperparam_mutations={"lr": tune.loguniform(1e-3, 1e-1)}, limits={"lr": (1e-3, 1e-1)},
                                quantile_fraction=0.5, max_t=12, settle=4, resample_probability=0.0)
        scheduler.set_search_properties(metric="objective", mode="min")
        rescued, _ = _rescue(scheduler)
        moved.add(round(rescued.config["lr"], 6))
    assert moved == {0.012, 0.008}
