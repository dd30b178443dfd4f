"""The wrapper kit: a fourth model written against TorchWrapper gets the loop, divergence and
the checkpoint round trip without copying them; the contract's protocols and checks."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
from torch import nn

from collapsetune import metrics
from collapsetune.configs import check_fields
from collapsetune.wrapper import Checkpointable, TorchWrapper, WithSamples, Wrapper

# --- the fourth model: everything it needs, and nothing the kit already does ----------------


@dataclasses.dataclass(frozen=True)
class ToyLMConfig:
    max_iterations: int = 3
    seed: int = 0
    threads: int = 1
    steps_per_report: int = 4
    grad_clip: float = 1.0
    vocab: int = 16
    lr: float = 0.05

    def __post_init__(self) -> None:
        check_fields(self)
        if self.vocab < 2:
            raise ValueError(f"vocab must be >= 2, got {self.vocab}")


class ToyLM(TorchWrapper):
    """A bigram language model on a fixed cyclic sequence, with dropout so torch's RNG matters."""

    config_class = ToyLMConfig
    reported_metrics = ("train/loss", "val/loss", "collapse/unique_tokens")

    def build(self, cfg: ToyLMConfig) -> tuple[nn.Module, torch.optim.Optimizer]:
        self.tokens = torch.arange(64) % cfg.vocab
        model = nn.Sequential(nn.Embedding(cfg.vocab, 8), nn.Dropout(0.1), nn.Linear(8, cfg.vocab))
        return model, torch.optim.SGD(model.parameters(), lr=cfg.lr)

    def lr_at(self, step: int) -> float:
        return self.cfg.lr * (1.0 - step / self.total_steps)

    def train_loss(self) -> torch.Tensor:
        i = torch.randint(len(self.tokens) - 1, (8,), generator=self.generator)
        return nn.functional.cross_entropy(self.model(self.tokens[i]), self.tokens[i + 1])

    def evaluate(self) -> dict[str, float]:
        logits = self.model(self.tokens[:-1])  # (T, V)
        self.argmax = logits.argmax(-1)
        return {"val/loss": nn.functional.cross_entropy(logits, self.tokens[1:]).item(),
                "collapse/unique_tokens": metrics.unique_tokens(self.argmax[None])}

    def samples(self) -> str:
        return " ".join(map(str, self.argmax.tolist()))


# --- tests -----------------------------------------------------------------------------------


def test_fourth_model_meets_the_contract():
    lm = ToyLM({"max_iterations": 2})
    assert isinstance(lm, Wrapper) and isinstance(lm, Checkpointable) and isinstance(lm, WithSamples)
    out = lm.step()
    assert set(out) == set(ToyLM.reported_metrics) and all(math.isfinite(v) for v in out.values())
    assert (lm.steps, lm.reports, lm.total_steps) == (4, 1, 8)
    assert lm.optimizer.param_groups[0]["lr"] == pytest.approx(0.05 * (1 - 3 / 8))  # the schedule ran


def test_fourth_model_checkpoint_round_trip_is_bit_identical():
    a = ToyLM({})
    a.step()
    state = copy.deepcopy(a.state_dict())
    expected = [a.step(), a.step()]
    b = ToyLM({"seed": 0})
    torch.manual_seed(123)  # the global RNG (dropout) must come back from the state, not from the seed
    b.load_state_dict(state)
    assert [b.step(), b.step()] == expected


def test_fourth_model_stops_stepping_once_diverged():
    lm = ToyLM({})
    with torch.no_grad():
        lm.model[2].weight.fill_(float("nan"))
    assert math.isnan(lm.step()["train/loss"]) and lm.diverged and lm.steps == 1
    assert math.isnan(lm.step()["train/loss"]) and lm.steps == 1  # no further steps


def test_config_keys_and_types_are_checked_at_the_boundary():
    with pytest.raises(ValueError, match=r"unknown test_wrapper config key 'vocb' \(did you mean 'vocab'\?\)"):
        ToyLM({"vocb": 8})
    with pytest.raises(ValueError, match="'vocab' expects an integer, got 'big'"):
        ToyLM({"vocab": "big"})


def test_a_metric_missing_from_reported_metrics_is_an_error():
    class Undeclared(ToyLM):
        reported_metrics = ("train/loss", "val/loss")

    with pytest.raises(RuntimeError, match=r"returned \['collapse/unique_tokens'\].*reported_metrics"):
        Undeclared({}).step()


def test_config_class_must_have_the_loop_fields():
    @dataclasses.dataclass
    class NoLoop:
        lr: float = 0.1

    with pytest.raises(TypeError, match=r"needs the fields \['max_iterations', 'seed', 'threads', 'steps_per_report'\]"):
        type("Broken", (ToyLM,), {"config_class": NoLoop})


def test_a_model_missing_a_method_cannot_be_built():
    class NoEvaluate(TorchWrapper):
        config_class = ToyLMConfig
        build, train_loss = ToyLM.build, ToyLM.train_loss

    with pytest.raises(TypeError, match="evaluate"):
        NoEvaluate({})


def test_loading_another_checkpoint_keeps_this_configs_optimizer_settings():
    # PBT copies a trial's checkpoint into a trial with a perturbed config: weights and the
    # optimizer's state come from the checkpoint, its lr from the config it runs with now.
    @dataclasses.dataclass(frozen=True)
    class AdamConfig(ToyLMConfig):
        weight_decay: float = 0.0

    class ConstantAdam(ToyLM):  # no schedule: the lr stays what the optimizer holds
        config_class = AdamConfig

        def build(self, cfg):
            model, _ = super().build(cfg)
            return model, torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

        def lr_at(self, step):
            return None

    donor = ConstantAdam({"lr": 0.05, "weight_decay": 0.1})
    donor.step()
    copy_ = ConstantAdam({"lr": 0.01, "weight_decay": 0.3})
    copy_.load_state_dict(donor.state_dict())
    group = copy_.optimizer.param_groups[0]
    assert (group["lr"], group["weight_decay"]) == (0.01, 0.3)
    assert copy_.optimizer.state_dict()["state"][0]["step"] == donor.steps  # Adam's moments came along
    assert all(torch.equal(a, b) for a, b in zip(copy_.model.parameters(), donor.model.parameters()))


def test_a_torch_wrapper_reconfigures_in_place_only_the_fields_it_declares():
    class Retuned(ToyLM):
        retunable = ("lr",)

    lm = Retuned({"lr": 0.05})
    assert lm.reconfigure({"lr": 0.01}) and lm.cfg.lr == 0.01
    assert not lm.reconfigure({"lr": 0.01, "vocab": 8}) and lm.cfg.vocab == 16
    plain = ToyLM({"lr": 0.05})  # declares none: not kept, not even for its own config (below)
    assert not plain.reconfigure({"lr": 0.05}) and not plain.reconfigure({"lr": 0.01})


def test_a_torch_wrapper_that_declares_no_retunable_fields_is_never_kept():
    """A wrapper written before `reconfigure` may hold state its state_dict does not carry
    (here a running best). Tune may reuse an actor that ran *another* trial of the same config
    for this trial's own checkpoint: kept, that trial's best would be reported as this one's.
    Keeping is the wrapper's choice, made by listing `retunable`; without it, it is rebuilt."""

    class Best(ToyLM):
        reported_metrics = (*ToyLM.reported_metrics, "val/best_loss")

        def build(self, cfg):
            self.best = math.inf
            return super().build(cfg)

        def evaluate(self):
            out = super().evaluate()
            self.best = min(self.best, out["val/loss"])
            return out | {"val/best_loss": self.best}

    own = Best({"lr": 0.05})
    own.step()
    state = copy.deepcopy(own.state_dict())
    other = Best({"lr": 0.05})  # another trial of the same config, on the actor Tune reuses
    for _ in range(3):
        other.step()
    rebuilt = Best({"lr": 0.05})
    rebuilt.load_state_dict(copy.deepcopy(state))
    expected = rebuilt.step()["val/best_loss"]
    if other.reconfigure({"lr": 0.05}):  # CollapseTrainable keeps it and loads the checkpoint
        other.load_state_dict(copy.deepcopy(state))
        assert other.step()["val/best_loss"] == expected
