"""The Lightning callback on a real tiny LightningModule trained on CPU, run as a function
trainable (collapsetune.function) without Ray: one report per validation, the named and the
collapse metrics, Lightning's checkpoint through a restore, and nothing outside a sweep."""

from __future__ import annotations

import pytest

L = pytest.importorskip("lightning.pytorch")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from collapsetune.function import function_wrapper  # noqa: E402
from collapsetune.integrations import TOKEN_METRICS  # noqa: E402
from collapsetune.integrations.lightning import CollapseCallback  # noqa: E402

VOCAB = 12


class Tiny(L.LightningModule):
    """Next-token prediction on a cyclic sequence 0, 1, ..., 11, 0, 1, ...: an embedding and a
    linear layer. lr 0 never learns; a large lr gets it right within an epoch."""

    def __init__(self, lr: float) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net, self.lr = torch.nn.Sequential(torch.nn.Embedding(VOCAB, 8), torch.nn.Linear(8, VOCAB)), lr

    def forward(self, x):  # (B, T) -> (B, T, V)
        return self.net(x)

    def training_step(self, b, _):
        return F.cross_entropy(self.net(b[0]).flatten(0, 1), b[1].flatten())

    def validation_step(self, b, _):
        self.log("val_loss", F.cross_entropy(self.net(b[0]).flatten(0, 1), b[1].flatten()))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def _data() -> tuple[DataLoader, DataLoader, torch.Tensor]:
    x = torch.arange(64 * 8).view(64, 8) % VOCAB  # (64, 8)
    y = (x + 1) % VOCAB
    return DataLoader(TensorDataset(x, y), batch_size=16), DataLoader(TensorDataset(x, y), batch_size=64), x[:4]


def train(config: dict) -> None:
    train_loader, val_loader, probe = _data()
    collapse = CollapseCallback(metrics={"val/loss": "val_loss"}, probe=probe)
    trainer = L.Trainer(max_epochs=config["max_iterations"], callbacks=[collapse], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(Tiny(config["lr"]), train_loader, val_loader, ckpt_path=collapse.resume_path())


def test_each_validation_is_one_report_of_named_and_collapse_metrics():
    trial = function_wrapper(train)({"lr": 5.0, "max_iterations": 3})
    reports = [trial.step() for _ in range(3)]
    trial.close()
    assert all(set(r) == {"val/loss", *TOKEN_METRICS} for r in reports)
    assert reports[-1]["val/loss"] < reports[0]["val/loss"]
    assert reports[-1]["collapse/unique_tokens"] == VOCAB  # it predicts the next token of every one
    frozen = function_wrapper(train)({"lr": 0.0, "max_iterations": 3})
    assert frozen.step()["collapse/unique_tokens"] < VOCAB  # untrained: a few favourite tokens
    frozen.close()


def test_a_restored_trial_continues_from_lightnings_checkpoint():
    whole = function_wrapper(train)({"lr": 0.5, "max_iterations": 4})
    expected = [whole.step()["val/loss"] for _ in range(4)]
    whole.close()
    first = function_wrapper(train)({"lr": 0.5, "max_iterations": 4})
    before = [first.step()["val/loss"] for _ in range(2)]
    state = first.state_dict()
    first.close()
    assert set(state["checkpoint"]) == {"lightning"}  # Lightning's own checkpoint file, as bytes
    second = function_wrapper(train)({"lr": 0.5, "max_iterations": 4})
    second.load_state_dict(state)
    after = [second.step()["val/loss"] for _ in range(2)]
    second.close()
    assert before + after == pytest.approx(expected, rel=1e-5)  # no shuffling: the same epochs again


def test_outside_a_sweep_the_callback_reports_nowhere_and_saves_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train({"lr": 0.5, "max_iterations": 2})  # no trial: runs to its end
    assert not list(tmp_path.iterdir())


def test_the_callback_needs_a_probe_and_names_missing_metrics():
    with pytest.raises(ValueError, match="needs a probe"):
        CollapseCallback(metrics=["val_loss"])
    train_loader, val_loader, probe = _data()
    trainer = L.Trainer(max_epochs=1, callbacks=[CollapseCallback(metrics=["val/acc"], probe=probe)], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(KeyError, match=r"\['val/acc'\] not in trainer.callback_metrics; it has \['val_loss'\]"):
        trainer.fit(Tiny(0.5), train_loader, val_loader)


def test_a_pbt_copy_trains_with_its_own_lr_not_the_donors():
    # PBT: a trial takes another's checkpoint with a perturbed config. Lightning's checkpoint
    # holds the optimizer's state, lr included: the copy's lr must win (as in the class kit).
    donor = function_wrapper(train)({"lr": 0.5, "max_iterations": 4})
    [donor.step() for _ in range(2)]
    state = donor.state_dict()
    donor.close()
    copy = function_wrapper(train)({"lr": 0.0, "max_iterations": 4})
    copy.load_state_dict(state)
    after = [copy.step()["val/loss"] for _ in range(2)]
    copy.close()
    assert after[0] == after[1]  # lr 0: the weights stay put
