"""The Hugging Face callback on a randomly initialised tiny GPT-2 (built from its
configuration in the test: nothing downloaded), trained by the real Trainer on CPU as a
function trainable without Ray: one report per evaluation, the Trainer's checkpoint
through a restore, and nothing more outside a sweep."""

from __future__ import annotations

import os

import pytest

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
import torch  # noqa: E402

from collapsetune.function import function_wrapper  # noqa: E402
from collapsetune.integrations import TOKEN_METRICS  # noqa: E402
from collapsetune.integrations.transformers import CollapseCallback  # noqa: E402

VOCAB = 12


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _trainer(config: dict, callback: CollapseCallback, output_dir: str):
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=VOCAB, n_positions=16, n_embd=32, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0))
    rows = [{"input_ids": (torch.arange(16) + i) % VOCAB, "labels": (torch.arange(16) + i) % VOCAB} for i in range(64)]
    args = transformers.TrainingArguments(
        output_dir=output_dir, learning_rate=config["lr"], num_train_epochs=config["max_iterations"],
        per_device_train_batch_size=16, eval_strategy="epoch", save_strategy="no", logging_strategy="no",
        report_to=[], disable_tqdm=True, use_cpu=True, seed=0, data_seed=0)
    return transformers.Trainer(model=model, args=args, train_dataset=rows, eval_dataset=rows[:16], callbacks=[callback])


def train(config: dict) -> None:
    callback = CollapseCallback(probe=torch.arange(4 * 4).view(4, 4) % VOCAB, max_new_tokens=8)
    _trainer(config, callback, config["output_dir"]).train(resume_from_checkpoint=callback.resume_path())


def test_each_evaluation_is_one_report_of_eval_loss_and_collapse_metrics(tmp_path):
    trial = function_wrapper(train)({"lr": 1e-2, "max_iterations": 3, "output_dir": str(tmp_path / "a")})
    reports = [trial.step() for _ in range(3)]
    trial.close()
    assert all(set(r) == {"val/loss", *TOKEN_METRICS} for r in reports)
    assert reports[-1]["val/loss"] < reports[0]["val/loss"]
    assert all(1 <= r["collapse/unique_tokens"] <= VOCAB for r in reports)


def test_a_restored_trial_continues_from_the_trainers_checkpoint(tmp_path):
    whole = function_wrapper(train)({"lr": 1e-2, "max_iterations": 4, "output_dir": str(tmp_path / "whole")})
    expected = [whole.step()["val/loss"] for _ in range(4)]
    whole.close()
    config = {"lr": 1e-2, "max_iterations": 4, "output_dir": str(tmp_path / "first")}
    first = function_wrapper(train)(config)
    before = [first.step()["val/loss"] for _ in range(2)]
    state = first.state_dict()
    first.close()
    assert "trainer_state.json" in state["checkpoint"]["hf"]  # the Trainer's own checkpoint folder, as bytes
    second = function_wrapper(train)({**config, "output_dir": str(tmp_path / "second")})
    second.load_state_dict(state)
    after = [second.step()["val/loss"] for _ in range(2)]
    second.close()
    assert before + after == pytest.approx(expected, rel=1e-4)


def test_outside_a_sweep_the_callback_saves_nothing_the_trainer_would_not(tmp_path):
    train({"lr": 1e-2, "max_iterations": 2, "output_dir": str(tmp_path / "out")})
    assert not any(p.name.startswith("checkpoint-") for p in (tmp_path / "out").glob("*"))


def test_the_callback_names_missing_metrics_and_checks_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="max_new_tokens must be >= 1, got 0"):
        CollapseCallback(probe=torch.zeros(1, 2, dtype=torch.long), max_new_tokens=0)
    callback = CollapseCallback(metrics={"val/acc": "eval_accuracy"}, probe=torch.zeros(1, 2, dtype=torch.long))
    with pytest.raises(KeyError, match=r"\['eval_accuracy'\] not in the Trainer's evaluation metrics; it has .*eval_loss"):
        _trainer({"lr": 1e-2, "max_iterations": 1}, callback, str(tmp_path)).train()
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_a_pbt_copy_trains_with_its_own_lr_not_the_donors(tmp_path):
    # PBT: a trial takes another's checkpoint with a perturbed config. The Trainer's checkpoint
    # holds the optimizer's and the lr schedule's state: the copy's lr must win.
    donor = function_wrapper(train)({"lr": 1e-2, "max_iterations": 4, "output_dir": str(tmp_path / "donor")})
    [donor.step() for _ in range(2)]
    state = donor.state_dict()
    donor.close()
    copy = function_wrapper(train)({"lr": 0.0, "max_iterations": 4, "output_dir": str(tmp_path / "copy")})
    copy.load_state_dict(state)
    after = [copy.step()["val/loss"] for _ in range(2)]
    copy.close()
    assert after[0] == after[1]  # lr 0: the weights stay put
