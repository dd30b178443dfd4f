import pyarrow.fs
from ray.train import Checkpoint
from ray.train._internal.session import _TrainingResult
from ray.train._internal.storage import StorageContext
from ray.tune.experiment import Trial

from collapsetune._ray.fixes import _checkpoints_on_storage


def test_a_pbt_copys_deleted_donor_checkpoint_is_not_taken_for_the_trials_own(tmp_path, capsys):
    """A trial that took a PBT copy resumes from its donor's checkpoint, in the donor's
    folder. When the donor's rotation deleted it, a checkpoint of the same name in the
    trial's own folder is another one: the trial falls back to its own newest, saying so."""
    storage = StorageContext(storage_path=str(tmp_path), experiment_dir_name="exp", trial_dir_name="trial_a")
    trial = Trial("Toy", config={}, storage=storage, stub=True)
    own = tmp_path / "exp" / "trial_a"
    for name in ("checkpoint_000001", "checkpoint_000002"):
        (own / name).mkdir(parents=True)
        (own / name / "collapsetune_state.pt").write_bytes(b"x")
    gone = tmp_path / "exp" / "trial_b" / "checkpoint_000002"  # the donor's, rotated away
    manager = trial.run_metadata.checkpoint_manager
    manager._latest_checkpoint_result = _TrainingResult(
        checkpoint=Checkpoint(path=str(gone), filesystem=pyarrow.fs.LocalFileSystem()), metrics={"training_iteration": 3})
    trial.set_status(Trial.PAUSED)
    _checkpoints_on_storage(trial)
    latest = manager._latest_checkpoint_result
    assert latest is not None and latest.checkpoint.path == str(own / "checkpoint_000002")
    assert "is gone from storage" in capsys.readouterr().out
