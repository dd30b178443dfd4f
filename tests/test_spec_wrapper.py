"""`collapsetune validate` against what a wrapper declares: config keys, value types and values
(`config_class`), and the metrics the objective and the collapse rules name (`reported_metrics`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from collapsetune.errors import SpecError
from collapsetune.spec import load_sweep

ROOT = Path(__file__).resolve().parent.parent
# A metric each built-in reports, a config key it has (and a misspelling), and one of its ints.
BUILTINS = {
    "bitnet_lm": ("collapse/unique_tokens", "collapse/unique_token", "tokenizer", "tokeniser", "d_model"),
    "mop_clip": ("collapse/subprompt_cos_max", "collapse/subprompt_cosmax", "tau_end", "tau_ned", "K"),
    "audio_caption": ("collapse/unique_captions", "collapse/unique_caption", "pooling", "poolin", "hidden"),
}
UNDECLARED = '''
import dataclasses


@dataclasses.dataclass
class NoHorizon:
    lr: float = 0.1


class Quiet:
    def __init__(self, config):
        pass

    def step(self):
        return {"val/loss": 1.0}


class NoMaxIterations(Quiet):
    config_class = NoHorizon


class BadDeclaration(Quiet):
    reported_metrics = "val/loss"
'''


def sweep(tmp_path: Path, trainable: str, **changes: Any) -> Path:
    path = tmp_path / "sweep.yaml"
    data = {"name": "t", "trainable": trainable, "objective": {"metric": "val/loss", "mode": "min"}, **changes}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def error(path: Path) -> str:
    with pytest.raises(SpecError) as info:
        load_sweep(path)
    return str(info.value)


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_misspelt_config_and_search_space_keys_fail(tmp_path, name):
    _, _, key, typo, _ = BUILTINS[name]
    message = error(sweep(tmp_path, name, config={typo: 1}, search_space={typo + "s": {"choice": [1, 2]}}))
    assert f"sweep.yaml: config.{typo}: {name} has no config key {typo!r} (did you mean {key!r}?)" in message
    assert f"search_space.{typo}s: {name} has no config key" in message


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_rule_on_a_metric_it_never_reports_fails(tmp_path, name):
    metric, typo, *_ = BUILTINS[name]
    rules = [{"metric": metric, "below": 1.0}, {"all": [{"metric": metric, "below": 1.0}, {"metric": typo, "above": 0.5}]}]
    message = error(sweep(tmp_path, name, collapse=rules))
    assert (f"sweep.yaml: collapse[1].all[1].metric: {name} never reports {typo!r} (did you mean {metric!r}?); "
            "expected one of the metrics it declares:") in message
    assert "collapse[0]" not in message


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_wrong_type_constant_fails(tmp_path, name):
    *_, int_key = BUILTINS[name]
    message = error(sweep(tmp_path, name, config={int_key: "big"}))
    assert f"config.{int_key}: {name} expects an integer, got 'big'" in message


def test_objective_on_an_unreported_metric_fails(tmp_path):
    message = error(sweep(tmp_path, "mop_clip", objective={"metric": "val/acc", "mode": "max"}))
    assert "objective.metric: mop_clip never reports 'val/acc' (did you mean 'val/accuracy'?)" in message


@pytest.mark.parametrize(("space", "says"), [
    ({"tokenizer": {"choice": ["bpe", "bytes"]}}, "search_space.tokenizer: bitnet_lm expects one of bpe, byte, "
                                                  "got 'bytes' among the choice values"),
    ({"n_layers": {"uniform": [1, 4]}}, "search_space.n_layers: bitnet_lm expects an integer, got uniform, which "
                                        "draws non-integer numbers (use randint or choice)"),
    ({"label_smoothing": {"uniform": [0.0, 2.0]}}, "search_space.label_smoothing: bitnet_lm rejects 2.0 (the high "
                                                   "bound of uniform [0.0, 2.0]): label_smoothing: smoothing must be <= 1"),
    ({"decode": {"choice": ["greedy", "top_k"]}}, "search_space.decode: bitnet_lm rejects 'top_k': top_k must be >= 1"),
])
def test_searched_values_are_checked_against_the_config_class(tmp_path, space, says):
    assert says in error(sweep(tmp_path, "bitnet_lm", search_space=space))


def test_searched_value_valid_beside_another_searched_value_passes(tmp_path):
    space = {"decode": {"choice": ["greedy", "top_k"]}, "top_k": {"choice": [10, 50]}}
    assert load_sweep(sweep(tmp_path, "bitnet_lm", search_space=space)).search_space["top_k"].args == (10, 50)


@pytest.fixture
def undeclared(tmp_path):
    (tmp_path / "undeclared.py").write_text(UNDECLARED)
    sys.modules.pop("undeclared", None)
    yield tmp_path
    sys.modules.pop("undeclared", None)


def test_wrapper_that_declares_nothing_is_not_checked_at_validate(undeclared):
    rules = [{"metric": "collapse/anything", "below": 1.0}]
    assert load_sweep(sweep(undeclared, "undeclared:Quiet", collapse=rules, config={"x": 1})).config["x"] == 1


def test_config_class_without_max_iterations_says_so_and_does_not_blame_config(undeclared):
    message = error(sweep(undeclared, "undeclared:NoMaxIterations", config={"lr": 0.2}))
    assert "trainable: undeclared:NoMaxIterations.config_class (NoHorizon) has no max_iterations field" in message
    assert "config:" not in message


def test_reported_metrics_must_be_a_tuple_of_names(undeclared):
    message = error(sweep(undeclared, "undeclared:BadDeclaration"))
    assert "trainable: undeclared:BadDeclaration.reported_metrics must be a tuple of metric names" in message


@pytest.mark.parametrize("path", sorted((ROOT / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_sweeps_validate(path):
    assert load_sweep(path).name


@pytest.mark.parametrize(("mistakes", "shown"), [
    # a misspelt top-level key (_load), a name no folder can have (_places), and a search bound
    # the wrapper's config class rejects (configs): each independent of the others
    ({"schedular": {"type": "fifo"}, "name": "my sweep"}, ["schedular: unknown key", "name: expected a name usable"]),
    # a misspelt config key and a wrong-type constant the config class would refuse on its own
    ({"config": {"tokeniser": "bpe", "d_model": "big"}}, ["config.tokeniser: bitnet_lm has no config key",
                                                          "config.d_model: bitnet_lm expects an integer"]),
])
def test_validate_shows_every_mistake_at_once(tmp_path, mistakes, shown):
    bound = {"label_smoothing": {"uniform": [0.0, 2.0]}}
    message = error(sweep(tmp_path, "bitnet_lm", search_space=bound, **mistakes))
    assert message.startswith("3 problems:")
    for says in [*shown, "search_space.label_smoothing: bitnet_lm rejects 2.0 (the high bound of uniform"]:
        assert says in message
