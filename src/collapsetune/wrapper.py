"""The model-wrapper contract in one place, and the small kit the built-in wrappers share.

A wrapper is any class with ``__init__(config)`` and ``step() -> dict[str, float]``
(:class:`Wrapper`); ``CollapseTrainable`` drives it under Ray Tune, and nothing here imports
Ray. The rest of the contract is optional, each part its own protocol or class attribute:

- :class:`Checkpointable`: ``state_dict()`` / ``load_state_dict(state)``; enables checkpoints,
  restoring a trial and PBT. Tensors and plain types only (read with ``weights_only=True``).
- :class:`WithSamples`: ``samples() -> str``, logged beside every report.
- :class:`WithArtifacts`: ``write_artifacts(directory)``, called on the report where the
  verdict turns and on the last; for a trial ASHA cuts only with the sweep's
  ``draw_cut_trials: true`` (with the checkpoint it ends with; without ``state_dict`` on
  report 1); files there go to MLflow.
- ``reconfigure(config) -> bool``: take ``config`` in place, where it differs from the
  wrapper's only in knobs PBT changes (``mutable``); True when done, False to be built anew.
  When an actor Tune reuses holds a wrapper so built, ``CollapseTrainable`` keeps it for the
  next trial's checkpoint (a PBT copy, a pause and resume): ``reconfigure``, then
  ``load_state_dict``, must leave it as ``__init__(config)`` then ``load_state_dict`` would.
  Without it the wrapper is built anew, as before.
- ``config_class``: a dataclass with one field per config key. ``collapsetune validate``
  checks the sweep's keys, value types and values against it before any trial. It must have
  a ``max_iterations`` field: the launcher always passes the sweep's top-level
  ``max_iterations`` (reports per trial, the horizon of any schedule) to the wrapper.
- ``reported_metrics``: every metric name ``step()`` can return, including ones it returns
  only for some configs. ``validate`` then rejects a collapse rule or objective on any other
  name; a wrapper that declares nothing has its rules' metrics checked on its first report.

:class:`TorchWrapper` is the kit: the loop every built-in model shares (steps per report, a
learning-rate schedule, gradient clipping, divergence, the checkpoint round trip of model,
optimizer, counters and random state, the device Ray gave the trial and mixed precision),
so that a wrapper keeps only what is its model's.

Example:
    >>> issubclass(TorchWrapper, Checkpointable)
    True
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import nn

from collapsetune.configs import from_dict
from collapsetune.devices import autocast, trial_device

__all__ = ["LOOP_FIELDS", "Checkpointable", "TorchWrapper", "WithArtifacts", "WithSamples", "Wrapper"]

# Config fields TorchWrapper reads. Read when present: `grad_clip` (max gradient norm, 0 = off),
# `device` (auto | cpu | cuda; absent: auto) and `precision` (fp32 | bf16 | fp16; absent: fp32).
LOOP_FIELDS = ("max_iterations", "seed", "threads", "steps_per_report")


@runtime_checkable
class Wrapper(Protocol):
    """What a sweep's ``trainable:`` names: config dict in, metrics dict out, once per report.

    Optional class attributes: ``config_class`` (a dataclass of the config keys, with
    ``max_iterations``) and ``reported_metrics`` (a tuple of every metric name ``step`` can
    return); see the module docstring.

    Example:
        >>> class Toy:
        ...     def __init__(self, config): self.lr = config["lr"]
        ...     def step(self): return {"val/loss": 1.0 / self.lr}
        >>> isinstance(Toy({"lr": 0.5}), Wrapper)
        True
    """

    def __init__(self, config: dict[str, Any]) -> None: ...

    def step(self) -> dict[str, float]:
        """Train one reporting interval, evaluate, return metrics (its collapse metrics included)."""
        ...


@runtime_checkable
class Checkpointable(Protocol):
    """Optional: both methods, or neither."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@runtime_checkable
class WithSamples(Protocol):
    """Optional: a few generated outputs as text, logged with every report."""

    def samples(self) -> str: ...


@runtime_checkable
class WithArtifacts(Protocol):
    """Optional: pictures and files of the current report, written into ``directory``."""

    def write_artifacts(self, directory: str) -> None: ...


class TorchWrapper(abc.ABC):
    """Base of a wrapper around one torch model and one optimizer: it owns the training loop.

    A subclass sets ``config_class`` (a dataclass with the :data:`LOOP_FIELDS` and, if it
    clips gradients, ``grad_clip``) and ``reported_metrics``, and writes three methods:

    - ``build(cfg) -> (model, optimizer)``: model, data and optimizer from the parsed config;
      torch's global RNG is seeded with ``cfg.seed`` just before, for the initial weights.
    - ``train_loss() -> Tensor``: one batch's loss; draw batches from ``self.generator``.
    - ``evaluate() -> dict[str, float]``: metrics on fixed data; runs in eval mode, no grad.

    and may override ``lr_at(step)`` (a schedule) and ``steps_this_report()``. For PBT copies
    without a rebuild it may list ``retunable`` fields (read afresh from ``self.cfg``, or
    re-derived by an override of ``retune(cfg)``) that ``reconfigure`` then takes in place.
    It inherits ``step()``, ``state_dict()`` / ``load_state_dict()``, ``reconfigure`` and the
    attributes ``cfg``, ``model``,
    ``optimizer``, ``generator``, ``steps`` (optimizer steps so far), ``reports``,
    ``total_steps`` (``max_iterations * steps_per_report``, the horizon of schedules),
    ``diverged`` and ``device``.

    The device (:func:`collapsetune.devices.trial_device` of ``cfg.device``, default auto: the
    GPU Ray gave the trial, else the CPU) is the kit's: after ``build`` it moves the model
    (the optimizer keeps pointing at its parameters) and every tensor or module the wrapper
    keeps as an attribute, or in a list, tuple or dict attribute, there; names listed in
    ``keep_on_cpu`` stay. So batches indexed out of those tensors, and what ``evaluate``
    computes from them, are on the device without a line of the wrapper's. A batch made on
    the CPU (a data loader) goes over with ``self.to_device(batch)``. ``self.generator`` stays
    on the CPU: batches and masks drawn from it are the same on every device. ``train_loss``
    and ``evaluate`` run under autocast when ``cfg.precision`` is bf16 or fp16 (fp16 with
    gradient scaling).

    Example:
        >>> @dataclasses.dataclass(frozen=True)
        ... class LineConfig:
        ...     max_iterations: int = 2
        ...     seed: int = 0
        ...     threads: int = 1
        ...     steps_per_report: int = 5
        >>> class Line(TorchWrapper):
        ...     config_class = LineConfig
        ...     reported_metrics = ("train/loss", "val/loss")
        ...     def build(self, cfg):
        ...         model = nn.Linear(1, 1)
        ...         return model, torch.optim.SGD(model.parameters(), lr=0.1)
        ...     def train_loss(self):
        ...         x = torch.randn(8, 1, generator=self.generator)
        ...         return (self.model(x) - 2 * x).pow(2).mean()
        ...     def evaluate(self):
        ...         return {"val/loss": self.train_loss().item()}
        >>> sorted(Line({}).step())
        ['train/loss', 'val/loss']
    """

    config_class: ClassVar[type]
    reported_metrics: ClassVar[tuple[str, ...]] = ()
    keep_on_cpu: ClassVar[tuple[str, ...]] = ()  # attributes the kit does not move to the device
    # Config fields `reconfigure` may change in place: none shapes the model, its data or its
    # fixed evaluation inputs, and `retune` re-derives whatever `build` made from them. Empty:
    # the wrapper is built anew on every reused actor, as before `reconfigure` existed.
    retunable: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        config_class = getattr(cls, "config_class", None)
        if config_class is None:  # an intermediate base; its subclasses are checked
            return
        if not dataclasses.is_dataclass(config_class):
            raise TypeError(f"{cls.__name__}.config_class must be a dataclass, got {config_class!r}")
        missing = [n for n in LOOP_FIELDS if n not in {f.name for f in dataclasses.fields(config_class)}]
        if missing:
            raise TypeError(f"{cls.__name__}.config_class ({config_class.__name__}) needs the fields "
                            f"{missing}: TorchWrapper's loop reads them")

    def __init__(self, config: Mapping[str, Any]) -> None:
        cfg = self.cfg = from_dict(self.config_class, dict(config), type(self).__module__.rpartition(".")[2])
        torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)  # initial weights (and dropout, through the global generator)
        self.generator = torch.Generator().manual_seed(cfg.seed)  # batches, masks, sampling in training
        self.steps = 0
        self.reports = 0
        self.diverged = False
        self.total_steps = cfg.max_iterations * cfg.steps_per_report
        self.device = trial_device(getattr(cfg, "device", "auto"))
        self.precision = getattr(cfg, "precision", "fp32")
        self._autocast()  # fp16 on a CPU trial fails here, before any work
        model, optimizer = self.build(cfg)
        self.model, self.optimizer = _to_device(model, optimizer, self.device), optimizer
        self._move_attributes()
        # fp16 gradients underflow without a loss scale; bf16 has fp32's range and needs none.
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` on this trial's device (a no-op when it is there already)."""
        return tensor.to(self.device, non_blocking=True)

    def _autocast(self) -> Any:
        return autocast(self.device, self.precision)

    def _move_attributes(self) -> None:
        skip = {"model", "optimizer", "generator", *self.keep_on_cpu}
        for name, value in list(vars(self).items()):
            if name not in skip:
                setattr(self, name, _moved(value, self.device))

    # --- what a model supplies -------------------------------------------------------------

    @abc.abstractmethod
    def build(self, cfg: Any) -> tuple[nn.Module, torch.optim.Optimizer]:
        """The model and its optimizer; also sets up data and fixed evaluation inputs."""

    @abc.abstractmethod
    def train_loss(self) -> torch.Tensor:
        """One training batch's scalar loss (the loop does backward and the optimizer step)."""

    @abc.abstractmethod
    def evaluate(self) -> dict[str, float]:
        """Metrics on fixed data after this report's steps, collapse metrics included."""

    def retune(self, cfg: Any) -> None:
        """Re-derive from ``cfg`` (the new ``self.cfg``) what ``build`` made of the
        ``retunable`` fields: optimizer settings, loss terms. By default nothing."""

    def reconfigure(self, config: Mapping[str, Any]) -> bool:
        """Take ``config`` in place when it differs from this wrapper's only in ``retunable``
        fields; False (nothing changed) otherwise, and the caller builds a new wrapper. The
        optimizer settings are ``retune``'s; ``load_state_dict`` keeps them. A wrapper that
        lists no ``retunable`` fields is never kept, not even for its own config: Tune may hand
        it another trial's checkpoint, and state its ``state_dict`` does not carry (written
        before ``reconfigure`` existed) would carry over; listing them is the opt-in."""
        if not self.retunable:
            return False
        cfg = from_dict(self.config_class, dict(config), type(self).__module__.rpartition(".")[2])
        changed = {f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) != getattr(self.cfg, f.name)}
        if not changed.issubset(self.retunable):
            return False
        self.cfg = cfg
        self.retune(cfg)
        self._move_attributes()  # what retune made (loss terms, say) goes to the trial's device
        return True

    def lr_at(self, step: int) -> float | None:
        """Learning rate for optimizer step ``step``; None keeps the optimizer's own (constant)."""
        return None

    def steps_this_report(self) -> int:
        """Optimizer steps per report; a decode-only wrapper returns 0."""
        return self.cfg.steps_per_report

    # --- the shared loop --------------------------------------------------------------------

    def step(self) -> dict[str, float]:
        """Train ``steps_this_report()`` steps, then evaluate.

        Returns:
            ``train/loss`` (mean over this report's steps; NaN once diverged; absent when the
            report asked for no steps) and the metrics of ``evaluate()``.
        """
        losses = self._train(self.steps_this_report())
        self.reports += 1
        self.model.eval()
        with torch.no_grad(), self._autocast():
            metrics = self.evaluate()
        if losses:
            metrics = {"train/loss": sum(losses) / len(losses), **metrics}
        elif self.diverged:
            metrics = {"train/loss": math.nan, **metrics}
        undeclared = sorted(set(metrics).difference(self.reported_metrics))
        if self.reported_metrics and undeclared:
            raise RuntimeError(f"{type(self).__name__}.step() returned {undeclared}, which its "
                               "reported_metrics does not declare; add them there")
        return metrics

    def _train(self, steps: int) -> list[float]:
        self.model.train()
        clip = getattr(self.cfg, "grad_clip", 0.0)
        losses: list[float] = []
        for _ in range(steps):
            if self.diverged:  # weights are non-finite: more steps cannot help
                break
            lr = self.lr_at(self.steps)
            if lr is not None:
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
            with self._autocast():
                loss = self.train_loss()
            losses.append(loss.item())
            self.steps += 1
            if not math.isfinite(losses[-1]):
                self.diverged = True
                break
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is None:
                loss.backward()
                if clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
                self.optimizer.step()
            else:
                self.scaler.scale(loss).backward()
                if clip > 0:
                    self.scaler.unscale_(self.optimizer)  # clip the true gradients, not scaled ones
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
                self.scaler.step(self.optimizer)  # skips a step whose gradients overflowed
                self.scaler.update()
        return losses

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain types only, so ``torch.load(weights_only=True)`` reads it. Tensors
        are where the trial keeps them; ``load_state_dict`` takes them from any device."""
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "steps": self.steps,
            "reports": self.reports,
            "diverged": self.diverged,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),  # dropout draws from the global generator
        }
        if self.device.type == "cuda":  # ... or, on a GPU, from the GPU's
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Model, optimizer state, counters and random state from ``state``; the optimizer's
        hyperparameters (lr, weight decay, betas, ...) stay the ones ``build`` set from this
        wrapper's config. Restoring its own checkpoint that changes nothing; under PBT, where
        a trial takes another's checkpoint with a perturbed config, the perturbed lr counts."""
        self.model.load_state_dict(state["model"])  # copies into the parameters, on their device
        configured = [{k: v for k, v in group.items() if k != "params"} for group in self.optimizer.param_groups]
        self.optimizer.load_state_dict(state["optimizer"])  # moves its moments to each parameter's device
        for group, settings in zip(self.optimizer.param_groups, configured):
            group.update(settings)
        self.steps = int(state["steps"])
        self.reports = int(state["reports"])
        self.diverged = bool(state["diverged"])
        # Generator states are CPU byte tensors, whatever map_location the checkpoint was read with.
        self.generator.set_state(state["generator"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        if "cuda_rng" in state and self.device.type == "cuda":  # a CPU checkpoint leaves the GPU's seeded
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.device)
        if "scaler" in state and self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])


def _to_device(model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device) -> nn.Module:
    """``model`` on ``device``, with ``optimizer`` (still without state) pointed at the moved
    parameters: ``Module.to`` may make new Parameter objects across devices."""
    before = list(model.parameters())
    model = model.to(device)
    moved = {id(old): new for old, new in zip(before, model.parameters())}
    for group in optimizer.param_groups:
        group["params"] = [moved.get(id(p), p) for p in group["params"]]
    return model


def _moved(value: Any, device: torch.device) -> Any:
    """A tensor or module attribute on ``device``; lists, tuples and dicts of them too."""
    if isinstance(value, (torch.Tensor, nn.Module)):
        return value.to(device)
    if type(value) in (list, tuple):
        return type(value)(_moved(v, device) for v in value)
    if type(value) is dict:
        return {k: _moved(v, device) for k, v in value.items()}
    return value
