"""CollapseTrainable driven in-process, without a Ray cluster: what each report carries, when
pictures are drawn, the rule state through a checkpoint (with torch only for tensors),
timeouts and damaged checkpoints."""

from __future__ import annotations

import collections
import dataclasses
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from collapsetune.collapse import Below, Rule
from collapsetune.trainable import (
    CHECKPOINT_FILE,
    WORST_OBJECTIVE,
    TrialPlan,
    TrialTimeout,
    _read_state,
    _write_state,
    make_trainable,
)

E2E = Path(__file__).parent / "e2e"
RULE = Rule((Below("collapse/unique_tokens", 20),), patience=2, grace=1)


@pytest.fixture(autouse=True)
def _trial_folders_in_tmp(tmp_path, monkeypatch):
    # Without Tune's storage a Trainable makes its folder under ~/ray_results: not in a test.
    import ray.tune.trainable.trainable as module

    monkeypatch.setattr(module, "DEFAULT_STORAGE_PATH", str(tmp_path / "ray_results"))


def _trainable(tmp_path, config: dict, **plan):
    cls = make_trainable(TrialPlan("outside_wrapper:Toy", (str(E2E),), (RULE,), "val/loss", "min", **plan), "Toy")
    return cls(config={"max_iterations": 6, **config})


def test_collapsed_trial_gets_the_worst_objective_and_its_verdict(tmp_path):
    trainable = _trainable(tmp_path, {"lr": 0.2})  # the Toy collapses from report 2 with lr > 0.05
    results = [trainable.train() for _ in range(3)]
    # report 1 is grace; report 2 the condition holds once (patience 2); report 3 it fires
    assert [r["collapse.status"] for r in results] == ["inconclusive", "inconclusive", "collapsed"]
    assert results[1]["collapse.reason"] == "collapse/unique_tokens=4 < 20 for 1 of 2 reports"
    assert "collapse.iteration" not in results[1] and results[1]["collapse/margin"] == (20 - 4) / 20
    assert results[1]["objective"] == results[1]["val/loss"]
    assert results[2]["objective"] == WORST_OBJECTIVE and results[2]["collapse/detected"] == 1
    assert results[2]["collapse.reason"] == "collapse/unique_tokens=4 < 20 for 2 reports"
    assert results[2]["collapse.iteration"] == 3 and results[2]["samples"] == "the the the"


def _reports_drawn(trainable, reports: int) -> list[int]:
    """Which of the next `reports` reports step() drew pictures on."""
    drawn = []
    for _ in range(reports):
        folder = Path(trainable.logdir) / "artifacts"
        shutil.rmtree(folder, ignore_errors=True)
        result = trainable.train()
        if folder.is_dir():
            drawn.append(result["training_iteration"])
    return drawn


def test_pictures_are_drawn_only_on_the_verdicts_report_and_the_last(tmp_path):
    # Pictures are the costliest part of a report (benchmarks/report_cost.py), and each one
    # overwrites the last: only the ones a trial ends with are ever seen.
    assert _reports_drawn(_trainable(tmp_path, {"lr": 0.2}), 6) == [3, 6]  # 3: the verdict
    assert _reports_drawn(_trainable(tmp_path, {"lr": 0.01}), 6) == [6]


def test_a_reports_cpu_counts_the_pictures_drawn_on_it(tmp_path):
    # time/cpu_s is what a report cost the trial. Pictures are drawn at the end of step() on
    # the report a trial ends with (its verdict's or its last), so a CPU mark taken before
    # them left them in no report at all, and the trial's cost (benchmarks/plain_vs.py sums
    # time/cpu_s) without its costliest part.
    (tmp_path / "drawing_wrapper.py").write_text(textwrap.dedent("""
        import time
        from outside_wrapper import Toy

        class Drawing(Toy):
            def write_artifacts(self, directory):
                start = time.process_time()
                while time.process_time() - start < 0.3:  # a drawing's CPU
                    pass
                super().write_artifacts(directory)
    """))
    cls = make_trainable(TrialPlan("drawing_wrapper:Drawing", (str(tmp_path), str(E2E)), (RULE,), "val/loss", "min"),
                         "Drawing")
    trainable = cls(config={"max_iterations": 3, "lr": 0.01})
    cpu = [trainable.train()["time/cpu_s"] for _ in range(3)]
    assert cpu[2] >= 0.3 and max(cpu[:2]) < 0.3  # the last report drew; the others did not


def test_a_trials_cpu_counts_building_its_wrapper_but_not_importing_its_module(tmp_path):
    # Importing the wrapper's module (torch, the model code: ~1.3 CPU-s for mop_clip) is once
    # per worker process, like a function trainable's imports, which Ray does as it unpickles
    # the function, before the function's own CPU mark. Counted in a class trainable's first
    # report, it made collapsetune's trials look 1.2x plain Ray Tune's on the same config
    # (docs/benchmarks.md, section 15). Building the wrapper (data, model) is the trial's.
    (tmp_path / "importing_wrapper.py").write_text(textwrap.dedent("""
        import time
        from outside_wrapper import Toy

        IMPORTED_AT = time.process_time()  # the import's last moment

        class Built(Toy):
            built_at = None

            def __init__(self, config):
                Built.built_at = time.process_time()  # the build's first moment
                super().__init__(config)
    """))
    cls = make_trainable(TrialPlan("importing_wrapper:Built", (str(tmp_path), str(E2E)), (RULE,), "val/loss", "min"),
                         "Built")
    trainable = cls(config={"max_iterations": 3, "lr": 0.01})
    module = sys.modules["importing_wrapper"]
    assert module.IMPORTED_AT <= trainable._cpu_mark <= module.Built.built_at


def _metrics(result: dict) -> dict:
    """A result without what differs between two runs of the same trial (time, CPU, host)."""
    return {k: v for k, v in result.items() if not k.startswith(("time", "timestamp", "date", "pid", "hostname",
                                                                       "node_ip", "node_id", "experiment", "trial_id"))}


def test_a_trial_cut_early_draws_no_pictures_unless_the_sweep_asks(tmp_path):
    # ASHA cuts a healthy trial at report 3 (the shipped MoP-CLIP sweep's first rung) and Tune
    # saves a checkpoint as the trial ends. A drawing would add ~40% to such a mop_clip trial
    # (docs/benchmarks.md, section 14), so none is drawn: not in step(), not in the checkpoint.
    cut = _trainable(tmp_path, {"lr": 0.01})
    results = [cut.train() for _ in range(3)]
    cut.save(str(tmp_path / "cut"))
    assert not (Path(cut.logdir) / "artifacts").exists()
    # With `draw_cut_trials: true` the checkpoint it ends with draws its last report's pictures;
    # everything it reports is the same either way.
    drawn = _trainable(tmp_path, {"lr": 0.01}, draw_at_end=True)
    assert [_metrics(drawn.train()) for _ in range(3)] == [_metrics(r) for r in results]
    drawn.save(str(tmp_path / "drawn"))
    pictures = Path(drawn.logdir) / "artifacts" / "vocabulary.txt"
    assert pictures.read_text() == "healthy\n"
    pictures.unlink()
    drawn.save(str(tmp_path / "again"))  # the same report: its pictures are already there
    assert not pictures.exists()


def test_collapsed_and_full_length_trials_keep_their_pictures_through_the_last_checkpoint(tmp_path):
    # Whatever draw_cut_trials says, the trials a user looks at have pictures: the collapsed one
    # from its verdict's report (the stopper ends it there), the full-length one from its last.
    for draw_at_end in (False, True):
        collapsed = _trainable(tmp_path, {"lr": 0.2}, draw_at_end=draw_at_end)
        assert _reports_drawn(collapsed, 3) == [3]
        collapsed.save(str(tmp_path / f"collapsed_{draw_at_end}"))
        assert (Path(collapsed.logdir) / "artifacts" / "vocabulary.txt").read_text() == "collapsed\n"
        full = _trainable(tmp_path, {"lr": 0.01}, draw_at_end=draw_at_end)
        assert _reports_drawn(full, 6) == [6]
        full.save(str(tmp_path / f"full_{draw_at_end}"))
        assert (Path(full.logdir) / "artifacts" / "vocabulary.txt").read_text() == "healthy\n"


def test_a_wrapper_without_state_draws_on_its_first_report_too_when_cut_trials_are_drawn(tmp_path):
    # No state_dict, so no checkpoint as it ends: Ray syncs a trial's files on its first report.
    (tmp_path / "stateless.py").write_text(textwrap.dedent("""
        class Stateless:
            def __init__(self, config):
                self.t = 0
            def step(self):
                self.t += 1
                return {"val/loss": 1.0 / self.t, "collapse/unique_tokens": 50.0}
            def write_artifacts(self, directory):
                open(f"{directory}/t.txt", "w").write(str(self.t))
    """))
    plan = TrialPlan("stateless:Stateless", (str(tmp_path),), (RULE,), "val/loss", "min", draw_at_end=True)
    trainable = make_trainable(plan, "Stateless")(config={"max_iterations": 5})
    assert _reports_drawn(trainable, 5) == [1, 5]
    # By default a trial cut early is not drawn, so report 1 is not drawn for it either.
    plan = dataclasses.replace(plan, draw_at_end=False)
    assert _reports_drawn(make_trainable(plan, "Stateless")(config={"max_iterations": 5}), 5) == [5]


def test_rule_state_and_model_travel_through_a_checkpoint(tmp_path):
    first = _trainable(tmp_path, {"lr": 0.2})
    first.train(), first.train()  # report 2: the condition held once (patience 2)
    saved = first.save(str(tmp_path / "ckpt"))
    again = _trainable(tmp_path, {"lr": 0.2})
    again.restore(saved)
    result = again.train()
    assert result["training_iteration"] == 3 and result["collapse.status"] == "collapsed"


def test_a_checkpoint_of_another_trial_brings_its_model_and_fresh_rules(tmp_path):
    # PBT copies trial "d"'s checkpoint into trial "a", whose perturbed config still collapses.
    from types import SimpleNamespace

    slow_rule = Rule((Below("collapse/unique_tokens", 20),), patience=2, grace=3)

    def trial(trial_id: str, lr: float):
        # What Tune hands a trainable about its trial (ray.tune.experiment.trial._TrialInfo).
        info = SimpleNamespace(trial_id=trial_id, trial_name=f"Toy_{trial_id}", experiment_name="x",
                               trial_resources=None)
        plan = TrialPlan("outside_wrapper:Toy", (str(E2E),), (slow_rule,), "val/loss", "min", mutable=("lr",),
                         grace_after_copy=1)
        return make_trainable(plan, "Toy")(config={"max_iterations": 9, "lr": lr, "__trial_info__": info})

    donor = trial("d", 0.01)
    for _ in range(5):
        donor.train()
    saved = donor.save(str(tmp_path / "donor"))
    rescued = trial("a", 0.2)
    rescued.restore(saved)
    first = rescued.train()
    assert first["training_iteration"] == 6
    assert (first["pbt.donor"], first["pbt/donor_report"], first["config/lr"]) == ("d", 5, 0.2)
    # Fresh rules, their grace cut from 3 to grace_after_copy 1: report 6 is grace, and they
    # judge from the trial's report 8, not 5.
    assert first["collapse.status"] == "inconclusive"
    assert first["collapse.reason"] == "a rule on collapse/unique_tokens can judge from report 8"
    # Paused and resumed (PBT runs trials in turns): its own checkpoint keeps the restarted
    # rules, and is not a copy.
    own = rescued.save(str(tmp_path / "own"))
    again = trial("a", 0.2)
    again.restore(own)
    results = [again.train() for _ in range(2)]
    assert all("pbt.donor" not in r for r in results)
    assert results[0]["collapse.reason"] == "collapse/unique_tokens=4 < 20 for 1 of 2 reports"
    assert results[1]["collapse.status"] == "collapsed" and results[1]["collapse.iteration"] == 8


# --- an actor Tune reuses for a PBT copy keeps its wrapper -----------------------------------


def _trial_config(tmp_path, trial_id: str, lr: float = 0.01, **more) -> dict:
    """A trial's config as Tune hands it to setup() or reset(): with its _TrialInfo."""
    from types import SimpleNamespace

    info = SimpleNamespace(trial_id=trial_id, trial_name=f"Retunable_{trial_id}", experiment_name="x",
                           trial_resources=None)
    return {"max_iterations": 9, "lr": lr, "builds": str(tmp_path / "builds.txt"), "__trial_info__": info, **more}


def _builds(tmp_path) -> list[str]:
    return (tmp_path / "builds.txt").read_text().split("\n")[:-1]


def test_a_pbt_copy_onto_an_actor_with_the_same_model_keeps_its_wrapper(tmp_path):
    plan = TrialPlan("outside_wrapper:Retunable", (str(E2E),), (RULE,), "val/loss", "min", mutable=("lr",))
    cls = make_trainable(plan, "Retunable")
    donor = cls(config=_trial_config(tmp_path, "d", lr=0.01))
    for _ in range(3):
        donor.train()
    saved = donor.save(str(tmp_path / "donor"))
    actor = cls(config=_trial_config(tmp_path, "a", lr=0.2))
    actor.train()
    kept = actor.wrapper
    # PBT paused trial "a"; Tune reuses its actor with the perturbed copy of the donor's config
    # (only the mutable lr differs) and restores the donor's checkpoint into it.
    assert actor.reset(_trial_config(tmp_path, "a", lr=0.012))
    actor.restore(saved)
    result = actor.train()
    assert actor.wrapper is kept and kept.lr == 0.012 and kept.t == 4
    assert (result["training_iteration"], result["pbt.donor"], result["config/lr"]) == (4, "d", 0.012)
    assert _builds(tmp_path)[2:] == [f"{os.getpid()} 0.012 kept"]  # built for the donor and trial a, not again


def test_a_reused_actor_that_starts_a_trial_afresh_builds_its_wrapper(tmp_path):
    plan = TrialPlan("outside_wrapper:Retunable", (str(E2E),), (RULE,), "val/loss", "min", mutable=("lr",))
    actor = make_trainable(plan, "Retunable")(config=_trial_config(tmp_path, "a", lr=0.2))
    actor.train(), actor.train()
    assert actor.reset(_trial_config(tmp_path, "b", lr=0.01))  # a new trial, no checkpoint to restore
    result = actor.train()
    assert result["training_iteration"] == 1 and actor.wrapper.t == 1  # not trial a's third step
    assert _builds(tmp_path) == [f"{os.getpid()} 0.2", f"{os.getpid()} 0.01"]


def test_an_actor_whose_model_shaping_config_changes_is_rebuilt(tmp_path):
    plan = TrialPlan("outside_wrapper:Retunable", (str(E2E),), (RULE,), "val/loss", "min", mutable=("lr",))
    cls = make_trainable(plan, "Retunable")
    donor = cls(config=_trial_config(tmp_path, "d", lr=0.01, seed=1))
    donor.train()
    saved = donor.save(str(tmp_path / "donor"))
    actor = cls(config=_trial_config(tmp_path, "a", lr=0.2, seed=0))
    assert actor.reset(_trial_config(tmp_path, "a", lr=0.012, seed=1))  # seed is not mutable
    actor.restore(saved)
    assert actor.train()["training_iteration"] == 2
    assert len(_builds(tmp_path)) == 3 and "kept" not in _builds(tmp_path)[-1]


def test_a_wrapper_without_reconfigure_is_rebuilt_on_reset_as_before(tmp_path):
    plan = TrialPlan("outside_wrapper:Toy", (str(E2E),), (RULE,), "val/loss", "min", mutable=("lr",))
    actor = make_trainable(plan, "Toy")(config={"max_iterations": 9, "lr": 0.2})
    actor.train()
    old = actor.wrapper
    assert actor.reset({"max_iterations": 9, "lr": 0.01})
    assert actor.wrapper is not old and actor.wrapper.lr == 0.01


def test_a_damaged_checkpoint_falls_back_to_the_intact_one_before_it(tmp_path):
    trial = tmp_path / "trial"
    first = _trainable(tmp_path, {"lr": 0.01})
    first.train()
    older = first.save(str(trial / "checkpoint_000000"))
    first.train(), first.train()
    newer = first.save(str(trial / "checkpoint_000001"))
    damaged = trial / "checkpoint_000001" / CHECKPOINT_FILE
    damaged.write_bytes(damaged.read_bytes()[:40])  # a full disk truncated it
    again = _trainable(tmp_path, {"lr": 0.01})
    again.restore(newer)
    assert again.train()["training_iteration"] == 2  # report 1's checkpoint, then report 2 again
    assert older.checkpoint.path.endswith("checkpoint_000000")


def test_a_step_that_never_returns_fails_the_trial_with_the_reason(tmp_path):
    trainable = _trainable(tmp_path, {"lr": 0.01, "sleep": 30}, report_timeout_s=0.5)
    with pytest.raises(TrialTimeout, match=r"step\(\) of report 1 did not return within 0 s \(report_timeout_s=0.5\)"):
        trainable.train()
    assert trainable.reset_config({"lr": 0.01}) is False  # its actor is never reused


def test_trial_timeout_counts_the_whole_trial(tmp_path):
    trainable = _trainable(tmp_path, {"lr": 0.01, "sleep": 0.2}, trial_timeout_s=0.3)
    trainable.train()
    with pytest.raises(TrialTimeout, match="trial_timeout_s=0.3"):
        trainable.train(), trainable.train()


def test_checkpoints_are_asked_for_by_time_when_the_sweep_sets_no_count(tmp_path):
    never = _trainable(tmp_path, {"lr": 0.01})
    assert "should_checkpoint" not in never.train()
    due = _trainable(tmp_path, {"lr": 0.01}, checkpoint_interval_s=1e-9)
    assert due.train()["should_checkpoint"] is True


def test_a_wrapper_without_tensors_is_run_and_checkpointed_without_importing_torch(tmp_path):
    # A fresh process, as a Ray worker is: torch costs a worker ~1 s and ~180 MiB.
    script = textwrap.dedent(f"""
        import sys
        import ray.tune.trainable.trainable as module
        module.DEFAULT_STORAGE_PATH = {str(tmp_path / "ray_results")!r}
        from collapsetune.collapse import Below, Rule
        from collapsetune.trainable import TrialPlan, make_trainable
        rule = Rule((Below("collapse/unique_tokens", 20),), patience=2, grace=1)
        cls = make_trainable(TrialPlan("outside_wrapper:Toy", ({str(E2E)!r},), (rule,), "val/loss", "min"), "Toy")
        trial = cls(config={{"lr": 0.2, "max_iterations": 6}})
        trial.train(), trial.train()
        again = cls(config={{"lr": 0.2, "max_iterations": 6}})
        again.restore(trial.save({str(tmp_path / "ckpt")!r}))
        print(again.train()["collapse.status"], "torch" in sys.modules)
    """)
    import collapsetune

    here = str(Path(collapsetune.__file__).parents[1])  # the collapsetune under test, not another install
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env,
                         check=True)
    assert out.stdout.split()[-2:] == ["collapsed", "False"], out.stdout[-2000:] + out.stderr[-2000:]
    assert not (tmp_path / "ckpt" / CHECKPOINT_FILE).read_bytes().startswith(b"PK")  # not torch's zip


def test_a_state_with_tensors_goes_through_torch_and_comes_back_whole(tmp_path):
    import torch

    state = {"monitor": {"reports": 3}, "wrapper": collections.OrderedDict(w=torch.arange(4.0))}
    _write_state(state, str(tmp_path / CHECKPOINT_FILE))
    assert (tmp_path / CHECKPOINT_FILE).read_bytes().startswith(b"PK")
    back = _read_state(str(tmp_path))
    assert back["monitor"] == {"reports": 3} and torch.equal(back["wrapper"]["w"], torch.arange(4.0))


def test_a_plain_checkpoint_round_trips_data_and_refuses_code(tmp_path):
    state = {"monitor": {"verdict": ["healthy", "", None], "values": [1.5, float("inf")]}, "wrapper": {"t": (2, b"x")}}
    _write_state(state, str(tmp_path / CHECKPOINT_FILE))
    assert _read_state(str(tmp_path)) == state
    (tmp_path / CHECKPOINT_FILE).write_bytes(pickle.dumps({"wrapper": collections.OrderedDict(t=2)}))
    with pytest.raises(pickle.UnpicklingError, match="data only, not collections.OrderedDict"):
        _read_state(str(tmp_path))
