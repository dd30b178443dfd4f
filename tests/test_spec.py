"""Sweep YAML -> SweepSpec: every bad input is a SpecError naming file, key and expected form."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collapsetune.errors import SpecError, SpecErrors
from collapsetune.spec import Distribution, SweepSpec, load_sweep, param_space, spec_to_dict

WRAPPER = """
import dataclasses


class Toy:
    def __init__(self, config):
        self.config = config

    def step(self):
        return {"val/loss": 1.0}


@dataclasses.dataclass
class TypedConfig:
    max_iterations: int = 1
    lr: float = 0.1
    width: int = 8

    def __post_init__(self):
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")


class Typed(Toy):
    config_class = TypedConfig
"""

BASE: dict[str, Any] = {
    "name": "toy",
    "trainable": "mywrap:Toy",
    "objective": {"metric": "val/loss", "mode": "min"},
}


@pytest.fixture
def sweeps(tmp_path: Path):
    """tmp_path/sweeps/ holding the toy wrapper module, beside an empty tmp_path/search_spaces/."""
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "search_spaces").mkdir()
    (tmp_path / "sweeps" / "mywrap.py").write_text(WRAPPER)
    sys.modules.pop("mywrap", None)  # each test's mywrap lives in a different tmp_path
    yield tmp_path / "sweeps"
    sys.modules.pop("mywrap", None)


def write(folder: Path, data: dict | str, name: str = "sweep.yaml") -> Path:
    path = folder / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def sweep(folder: Path, **changes: Any) -> Path:
    return write(folder, {**BASE, **changes})


def error(path: Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(SpecError) as info:
        load_sweep(path, overrides)
    return str(info.value)


def assert_says(text: str, *parts: str) -> None:
    missing = [p for p in parts if p not in text]
    assert not missing, f"{missing} not in:\n{text}"


# --- errors, one per kind ---------------------------------------------------------------


def test_unknown_top_level_key_lists_valid_keys(sweeps):
    path = sweep(sweeps, num_sample=4)
    assert_says(error(path), str(path), "num_sample: unknown key", "did you mean 'num_samples'", "valid keys:")


def test_unknown_nested_key_lists_valid_keys(sweeps):
    path = sweep(sweeps, scheduler={"grace": 2})
    assert_says(error(path), str(path), "scheduler.grace: unknown key", "grace_period, reduction_factor")


def test_wrong_type_names_expected_type(sweeps):
    path = sweep(sweeps, num_samples="many")
    assert_says(error(path), str(path), "num_samples: expected an integer, got 'many'")


def test_draw_cut_trials_is_off_by_default_and_takes_only_true_or_false(sweeps):
    assert load_sweep(sweep(sweeps)).draw_cut_trials is False
    assert load_sweep(sweep(sweeps, draw_cut_trials=True)).draw_cut_trials is True
    path = sweep(sweeps, draw_cut_trials="always")
    assert_says(error(path), str(path), "draw_cut_trials: expected true or false, got 'always'")


def test_bool_is_not_an_int(sweeps):
    assert_says(error(sweep(sweeps, max_iterations=True)), "max_iterations: expected an integer, got true")


def test_non_numeric_string_where_number_expected(sweeps):
    path = sweep(sweeps, scheduler={"reduction_factor": "fast"})
    assert_says(error(path), "scheduler.reduction_factor: expected a number, got 'fast'")


def test_optional_wrong_type_says_null_allowed(sweeps):
    assert_says(error(sweep(sweeps, search={"seed": "x"})), "search.seed: expected an integer or null, got 'x'")


def test_missing_required_key(sweeps):
    path = write(sweeps, {"name": "toy", "trainable": "mywrap:Toy"})
    assert_says(error(path), str(path), "objective: required key is missing")


def test_unknown_distribution_lists_valid_ones(sweeps):
    path = sweep(sweeps, search_space={"lr": {"logunifrm": [1e-4, 1e-2]}})
    assert_says(error(path), str(path), "search_space.lr: unknown distribution 'logunifrm'",
                "did you mean 'loguniform'", "uniform, loguniform, randint, choice, grid, const")


def test_distribution_mapping_has_one_key(sweeps):
    path = sweep(sweeps, search_space={"lr": {"uniform": [0, 1], "log": True}})
    assert_says(error(path), "search_space.lr: a distribution mapping has exactly one key")


@pytest.mark.parametrize("dist", [{"uniform": [0.2, 0.1]}, {"randint": [4, 4]}, {"int": [5, 1]}])
def test_low_not_below_high(sweeps, dist):
    path = sweep(sweeps, search_space={"x": dist})
    assert_says(error(path), str(path), "search_space.x:", "with low < high, got")


def test_randint_needs_integers(sweeps):
    path = sweep(sweeps, search_space={"layers": {"randint": [1.5, 4]}})
    assert_says(error(path), "search_space.layers: randint expects [low, high) integers")


def test_loguniform_bound_not_positive(sweeps):
    path = sweep(sweeps, search_space={"lr": {"loguniform": [0.0, 0.1]}})
    assert error(path) == f"{path}: search_space.lr: loguniform bounds must be > 0, got [0.0, 0.1]"


def test_empty_choice(sweeps):
    assert_says(error(sweep(sweeps, search_space={"t": {"choice": []}})),
                "search_space.t: choice expects a non-empty list of values, got []")


def test_unknown_trainable_lists_valid_names(sweeps):
    path = sweep(sweeps, trainable="bitnet")
    assert_says(error(path), str(path), "trainable: unknown trainable 'bitnet'",
                "audio_caption, bitnet_lm, mop_clip", "package.module:Class")


def test_unimportable_module_class(sweeps):
    path = sweep(sweeps, trainable="nosuchmod:Thing")
    assert_says(error(path), str(path), "trainable: cannot import module 'nosuchmod'", "No module named")


def test_module_without_the_class(sweeps):
    assert_says(error(sweep(sweeps, trainable="mywrap:Nope")), "trainable: module 'mywrap' has no class or function 'Nope'")


def test_grid_with_optuna_suggests_random_or_choice(sweeps):
    path = sweep(sweeps, search_space={"seed": {"grid": [0, 1]}})
    assert_says(error(path), str(path), "search_space.seed: grid needs search.algorithm: random", "choice")


def test_grid_with_random_search_loads(sweeps):
    spec = load_sweep(sweep(sweeps, search_space={"seed": {"grid": [0, 1]}}, search={"algorithm": "random"}))
    assert spec.search_space["seed"] == Distribution("grid", (0, 1))


@pytest.mark.parametrize("bounds", [{}, {"below": 1, "above": 2}])
def test_rule_needs_exactly_one_of_below_above(sweeps, bounds):
    path = sweep(sweeps, collapse=[{"metric": "collapse/entropy", **bounds}])
    assert_says(error(path), str(path), "collapse[0]: a condition needs exactly one of below, above, fell_from_best")


def test_group_condition_error_names_its_position(sweeps):
    group = {"all": [{"metric": "a", "above": 0.9}, {"metric": "b", "above": 0.9, "below": 0.1}]}
    assert_says(error(sweep(sweeps, collapse=[group])), "collapse[0].all[1]: a condition needs exactly one")


def test_negative_patience(sweeps):
    path = sweep(sweeps, collapse=[{"metric": "collapse/entropy", "below": 0.5, "patience": -1}])
    assert_says(error(path), str(path), "collapse[0].patience: patience must be >= 1, got -1")


def test_rule_unknown_key(sweeps):
    path = sweep(sweeps, collapse=[{"metric": "m", "below": 1, "patiense": 2}])
    assert_says(error(path), "collapse[0].patiense: unknown key", "did you mean 'patience'")


def test_missing_include_names_places_looked(sweeps):
    path = sweep(sweeps, search_space={"include": ["nothere.yaml"]})
    assert_says(error(path), str(path), "search_space.include: cannot find 'nothere.yaml'",
                str(sweeps.parent / "search_spaces" / "nothere.yaml"), str(sweeps / "nothere.yaml"))


def test_error_in_fragment_names_the_fragment(sweeps):
    write(sweeps.parent / "search_spaces", {"lr": {"loguniform": [-1, 1]}}, "bad.yaml")
    text = error(sweep(sweeps, search_space={"include": ["bad.yaml"]}))
    assert_says(text, "bad.yaml: search_space.lr: loguniform bounds must be > 0")


@pytest.mark.parametrize(("override", "says"), [
    ("num_samples", "override 'num_samples' must look like key=value"),
    ("num_sample=4", "override 'num_sample=4': unknown key 'num_sample'; valid keys:"),
    ("num_samples=[1", "override 'num_samples=[1': the value is not valid YAML"),
    ("name.x=1", "override 'name.x=1': name is not a mapping"),
    ("scheduler.grace=2", "scheduler.grace: unknown key"),
    ("num_samples=0", "num_samples: num_samples must be >= 1, got 0 (set by override 'num_samples=0')"),
])
def test_bad_override(sweeps, override, says):
    path = sweep(sweeps)
    assert_says(error(path, (override,)), str(path), says)


@pytest.mark.parametrize("section", ["config", "search_space"])
def test_max_iterations_is_reserved(sweeps, section):
    assert_says(error(sweep(sweeps, **{section: {"max_iterations": 3}})), f"{section}.max_iterations: is reserved")


def test_key_in_config_and_search_space(sweeps):
    path = sweep(sweeps, config={"lr": 0.1}, search_space={"lr": {"uniform": [0, 1]}})
    assert_says(error(path), "search_space.lr: is also set in config")


def test_objective_metric_cannot_be_objective(sweeps):
    assert_says(error(sweep(sweeps, objective={"metric": "objective", "mode": "min"})),
                "objective.metric: 'objective' is reserved")


def test_asha_grace_period_beyond_max_iterations(sweeps):
    path = sweep(sweeps, max_iterations=3, scheduler={"grace_period": 5})
    assert_says(error(path), "scheduler.grace_period: must be <= max_iterations (3), got 5")


def test_points_to_evaluate_checked_against_search_space(sweeps):
    path = sweep(sweeps, search_space={"lr": {"uniform": [0, 1]}},
                 search={"points_to_evaluate": [{"lr": 2.0}, {"wd": 0.1}]})
    text = error(path)
    assert_says(text, "search.points_to_evaluate[0].lr: expected a value in uniform [0.0, 1.0], got 2.0",
                "search.points_to_evaluate[1].wd: not a search_space key")


def test_yaml_syntax_error_names_line(sweeps):
    path = write(sweeps, "name: toy\ntrainable: [oops\n")
    assert_says(error(path), str(path), "invalid YAML at line 3")


def test_duplicate_yaml_key_is_an_error(sweeps):
    path = write(sweeps, "name: toy\nname: other\n")
    assert_says(error(path), str(path), "line 2", "duplicate key 'name'")


def test_top_level_must_be_a_mapping(sweeps):
    assert_says(error(write(sweeps, "- a\n- b\n")), "the top level must be a mapping")


def test_all_problems_reported_at_once(sweeps):
    path = sweep(sweeps, num_samples=0, scheduler={"grace": 1}, trainable="nope",
                 collapse=[{"metric": "m", "patience": -1, "below": 1}])
    with pytest.raises(SpecErrors) as info:
        load_sweep(path)
    keys = {e.key for e in info.value.errors}
    assert {"num_samples", "scheduler.grace", "trainable", "collapse[0].patience"} <= keys
    assert all(e.file == str(path) for e in info.value.errors)


# --- valid sweeps ----------------------------------------------------------------------


def full_sweep(sweeps: Path) -> Path:
    write(sweeps.parent / "search_spaces", {"lr": {"uniform": [0.1, 0.2]},
                                            "label_smoothing": {"uniform": [0.0, 0.2]}}, "reg.yaml")
    write(sweeps, {"tokenizer": {"choice": ["bpe", "byte"]}}, "local.yaml")
    text = """
name: toy-sweep
trainable: mywrap:Toy
config: {d_model: 128, layers: [64, 64]}
search_space:
  include: [reg.yaml, local.yaml]
  lr: {loguniform: [1e-4, 3e-2]}   # YAML 1.1 would read 1e-4 as a string
  seed: {grid: [0, 1, 2]}
  n_heads: {int: [1, 4]}
objective: {metric: val/loss, mode: min}
max_iterations: 20
num_samples: 16
search: {algorithm: random, seed: 0, points_to_evaluate: [{lr: 1.0e-3}]}
scheduler: {type: asha, grace_period: 2, reduction_factor: 3}
collapse:
  - {metric: collapse/unique_tokens, below: 20, patience: 2, grace: 1}
  - all:
      - {metric: collapse/subprompt_cos_max, above: 0.9}
      - {metric: collapse/assign_max_share, above: "9e-1"}
    patience: 1
resources: {cpu: 0.5, gpu: 0}
address: null
storage: results
mlflow: {tracking_uri: null}
"""
    return write(sweeps, text)


def test_valid_sweep_with_includes_and_overrides(sweeps):
    spec = load_sweep(full_sweep(sweeps), ["num_samples=4", "config.d_model=64", "mlflow.tracking_uri=sqlite:///m.db"])
    assert spec.search_space["lr"] == Distribution("loguniform", (1e-4, 3e-2))  # inline beats include
    assert spec.search_space["label_smoothing"].kind == "uniform"  # from ../search_spaces/
    assert spec.search_space["tokenizer"].args == ("bpe", "byte")  # from the sweep's folder
    assert spec.search_space["n_heads"].kind == "randint"  # `int` alias
    assert spec.num_samples == 4 and spec.config["d_model"] == 64  # override beats file
    assert spec.mlflow.tracking_uri == "sqlite:///m.db"
    assert spec.collapse[1].all and spec.collapse[1].conditions[1].value == 0.9  # numeric string converted
    assert spec.resources.cpu == 0.5 and spec.base_dir == sweeps


def test_override_to_plain_value_makes_a_constant(sweeps):
    spec = load_sweep(full_sweep(sweeps), ["search_space.lr=0.01", "collapse.0.patience=3"])
    assert spec.search_space["lr"] == Distribution("const", (0.01,))
    assert spec.collapse[0].patience == 3


def test_spec_to_dict_round_trips(sweeps):
    spec = load_sweep(full_sweep(sweeps), ["search_space.extra={const: {a: 1}}"])
    data = spec_to_dict(spec)
    assert "include" not in data["search_space"] and data["search_space"]["extra"] == {"const": {"a": 1}}
    again = load_sweep(write(sweeps, yaml.safe_dump(data), "resolved.yaml"))
    assert again == spec


def test_spec_is_frozen(sweeps):
    spec = load_sweep(full_sweep(sweeps))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.num_samples = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.config["d_model"] = 1  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.scheduler.grace_period = 5  # type: ignore[misc]


def test_spec_and_errors_pickle(sweeps):
    spec = load_sweep(full_sweep(sweeps))
    assert pickle.loads(pickle.dumps(spec)) == spec
    err = SpecErrors([SpecError("bad", file="f.yaml", key="a"), SpecError("worse", key="b")])
    assert str(pickle.loads(pickle.dumps(err))) == str(err)


def test_param_space_gives_tune_domains(sweeps):
    from ray import tune  # no Ray runtime is started by building domains

    space = param_space(load_sweep(full_sweep(sweeps), ["search_space.lr=0.01"]))
    assert isinstance(space["label_smoothing"], tune.search.sample.Float)
    assert isinstance(space["n_heads"], tune.search.sample.Integer)
    assert isinstance(space["tokenizer"], tune.search.sample.Categorical)
    assert space["seed"] == {"grid_search": [0, 1, 2]}
    assert space["lr"] == 0.01 and space["layers"] == [64, 64]
    assert space["max_iterations"] == 20 and space["d_model"] == 128


def test_module_class_beside_sweep_resolves(sweeps):
    spec = load_sweep(sweep(sweeps))
    assert spec.trainable == "mywrap:Toy" and spec.source == sweeps / "sweep.yaml"


def test_hand_built_spec_is_checked_like_yaml():
    with pytest.raises(SpecError, match="objective: expected a mapping"):
        SweepSpec(name="x", trainable="m:C", objective=3)  # type: ignore[arg-type]


# --- property: junk anywhere is a SpecError, never a crash ---------------------------------

PATHS = [
    ("name",), ("trainable",), ("config",), ("config", "d_model"), ("search_space",),
    ("search_space", "lr"), ("search_space", "include"), ("objective",), ("objective", "metric"),
    ("objective", "mode"), ("max_iterations",), ("num_samples",), ("search",), ("search", "seed"),
    ("search", "algorithm"), ("search", "points_to_evaluate"), ("scheduler",), ("scheduler", "type"),
    ("scheduler", "grace_period"), ("collapse",), ("collapse", 0), ("collapse", 0, "patience"),
    ("collapse", 0, "below"), ("collapse", 1, "all"), ("collapse", 1, "all", 0), ("resources",),
    ("resources", "gpu"), ("address",), ("storage",), ("mlflow",), ("mlflow", "tracking_uri"),
    ("max_concurrent",), ("max_failures",), ("checkpoint_frequency",), ("checkpoint_num_to_keep",),
    ("draw_cut_trials",), ("bogus",), ("search", "bogus"),
]
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats()
           | st.text(st.characters(codec="utf-8"), max_size=12)
           | st.sampled_from(["1e-4", "min", "uniform", "all", "mywrap:Toy", "include", "a:b"]))
JUNK = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["uniform", "loguniform", "choice", "grid", "int", "metric",
                                       "below", "all", "x"]) | st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
VALID = {
    **BASE,
    "search_space": {"lr": {"loguniform": [1e-4, 1e-2]}},
    "collapse": [{"metric": "m", "below": 1}, {"all": [{"metric": "a", "above": 1}]}],
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(PATHS), value=JUNK, override=st.none() | st.text(max_size=20))
def test_junk_values_only_raise_spec_error(sweeps, key, value, override):
    data = copy.deepcopy(VALID)
    node = data
    for part in key[:-1]:
        node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
    node[key[-1]] = value
    path = write(sweeps, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    try:
        load_sweep(path, () if override is None else (override, f"{'.'.join(map(str, key))}={override}"))
    except SpecError:
        pass


def test_wrapper_config_class_unknown_key_fails_before_any_trial(sweeps):
    path = sweep(sweeps, trainable="mywrap:Typed", config={"widht": 4},
                 search_space={"lrr": {"uniform": [0.1, 0.2]}})
    message = error(path)
    assert_says(message, "config.widht: mywrap:Typed has no config key 'widht' (did you mean 'width'?); "
                         "valid keys: max_iterations, lr, width")
    assert_says(message, "search_space.lrr: mywrap:Typed has no config key 'lrr'")


def test_wrapper_config_class_rejects_bad_constant(sweeps):
    message = error(sweep(sweeps, trainable="mywrap:Typed", config={"width": 0}))
    assert_says(message, "config: mywrap:Typed rejects these values: width must be >= 1, got 0")


def test_wrapper_config_class_accepts_valid_keys(sweeps):
    spec = load_sweep(sweep(sweeps, trainable="mywrap:Typed", config={"width": 4},
                            search_space={"lr": {"uniform": [0.1, 0.2]}}))
    assert spec.config["width"] == 4


# --- several objectives, constraint-aware search ------------------------------------------


def test_objective_list_loads_and_round_trips(sweeps):
    path = sweep(sweeps, objective=[{"metric": "val/loss", "mode": "min"}, {"metric": "val/div", "mode": "max"}],
                 scheduler={"type": "fifo"})
    spec = load_sweep(path)
    assert [(o.metric, o.mode) for o in spec.objective.all] == [("val/loss", "min"), ("val/div", "max")]
    assert spec.objective.metric == "val/loss"  # the first one is `objective` for the scheduler
    assert spec_to_dict(spec)["objective"] == [{"metric": "val/loss", "mode": "min"},
                                               {"metric": "val/div", "mode": "max"}]


def test_objective_list_errors_name_the_item(sweeps):
    path = sweep(sweeps, objective=[{"metric": "val/loss", "mode": "min"}, {"metric": "val/div", "mode": "up"}],
                 scheduler={"type": "fifo"})
    assert_says(error(path), "objective[1].mode", "up")
    path = sweep(sweeps, objective=[{"metric": "val/loss", "mode": "min"}, {"metric": "val/loss", "mode": "max"}],
                 scheduler={"type": "fifo"})
    assert_says(error(path), "objective", "'val/loss' is listed twice")
    assert_says(error(sweep(sweeps, objective=[])), "objective", "non-empty list")


def test_several_objectives_need_optuna_and_fifo(sweeps):
    two = [{"metric": "val/loss", "mode": "min"}, {"metric": "val/div", "mode": "max"}]
    assert_says(error(sweep(sweeps, objective=two)), "scheduler.type", "fifo")
    assert_says(error(sweep(sweeps, objective=two, scheduler={"type": "fifo"}, search={"algorithm": "random"})),
                "objective", "algorithm: optuna")


def test_constraints_and_sampler_need_optuna(sweeps):
    text = error(sweep(sweeps, search={"algorithm": "random", "constraints": True, "sampler": "gp"}))
    assert_says(text, "search.constraints: needs algorithm: optuna", "search.sampler: needs algorithm: optuna")
    assert_says(error(sweep(sweeps, search={"sampler": "cmaes"})), "search.sampler", "tpe", "nsga2", "gp")
    spec = load_sweep(sweep(sweeps, search={"constraints": True, "sampler": "nsga2"}))
    assert spec.search.constraints and spec.search.sampler == "nsga2"


# --- collapse_forecast ------------------------------------------------------------------

RULE = {"metric": "collapse/entropy", "below": 0.5, "grace": 2, "patience": 2}  # judges on report 4


def test_collapse_forecast_defaults_and_round_trip(sweeps):
    spec = load_sweep(sweep(sweeps, collapse=[RULE], collapse_forecast={"min_trials": 30}))
    forecast = spec.collapse_forecast
    assert (forecast.min_trials, forecast.max_false_stop, forecast.first_report) == (30, 0.05, 1)
    assert spec_to_dict(spec)["collapse_forecast"]["min_trials"] == 30
    assert load_sweep(sweep(sweeps, collapse=[RULE])).collapse_forecast is None


def test_collapse_forecast_bad_values_name_key_and_form(sweeps):
    path = sweep(sweeps, collapse=[RULE], collapse_forecast={"min_trial": 20})
    assert_says(error(path), str(path), "collapse_forecast.min_trial: unknown key", "did you mean 'min_trials'")
    path = sweep(sweeps, collapse=[RULE], collapse_forecast={"max_false_stop": 0})
    assert_says(error(path), "collapse_forecast.max_false_stop: max_false_stop must be > 0, got 0")
    path = sweep(sweeps, collapse=[RULE], collapse_forecast={"min_trials": "many"})
    assert_says(error(path), "collapse_forecast.min_trials: expected an integer, got 'many'")


def test_collapse_forecast_needs_rules_and_a_report_before_they_judge(sweeps):
    assert_says(error(sweep(sweeps, collapse_forecast={})), "collapse_forecast: needs collapse rules")
    path = sweep(sweeps, collapse=[RULE], collapse_forecast={"first_report": 4})
    assert_says(error(path), "collapse_forecast.first_report: must be below 4", "got 4")


def test_collapse_forecast_refused_beside_a_rescuing_scheduler(sweeps):
    path = sweep(sweeps, collapse=[RULE], collapse_forecast={}, search={"algorithm": "random"},
                 search_space={"lr": {"loguniform": [1.0e-4, 1.0e-2]}}, scheduler={"type": "pbt", "mutable": ["lr"]})
    assert_says(error(path), "collapse_forecast: scheduler pbt rescues collapsed trials")


# --- stop_sweep_when --------------------------------------------------------------------


def test_stop_sweep_when_defaults_round_trip_and_null_by_default(sweeps):
    spec = load_sweep(sweep(sweeps, collapse=[RULE], stop_sweep_when={"after_trials": 10}))
    assert (spec.stop_sweep_when.collapsed_share_above, spec.stop_sweep_when.after_trials) == (0.8, 10)
    assert spec_to_dict(spec)["stop_sweep_when"] == {"collapsed_share_above": 0.8, "after_trials": 10}
    assert load_sweep(sweep(sweeps, collapse=[RULE])).stop_sweep_when is None
    overridden = load_sweep(sweep(sweeps, collapse=[RULE]), ["stop_sweep_when.collapsed_share_above=0.9"])
    assert overridden.stop_sweep_when.collapsed_share_above == 0.9


@pytest.mark.parametrize("value, says", [
    ({"collapsed_share_above": 0}, "stop_sweep_when.collapsed_share_above: collapsed_share_above must be > 0, got 0"),
    ({"collapsed_share_above": 1}, "stop_sweep_when.collapsed_share_above: expected a share between 0 and 1"),
    ({"collapsed_share_above": "most"}, "stop_sweep_when.collapsed_share_above: expected a number, got 'most'"),
    ({"after_trials": 0}, "stop_sweep_when.after_trials: after_trials must be >= 1, got 0"),
    ({"after_trial": 5}, "stop_sweep_when.after_trial: unknown key"),
    (0.8, "stop_sweep_when: expected a mapping"),
])
def test_stop_sweep_when_bad_values_name_file_key_and_form(sweeps, value, says):
    path = sweep(sweeps, collapse=[RULE], stop_sweep_when=value)
    text = error(path)
    assert_says(text, str(path), says)
    assert len(text.splitlines()) == 1, text


def test_stop_sweep_when_needs_collapse_rules(sweeps):
    assert_says(error(sweep(sweeps, stop_sweep_when={})), "stop_sweep_when: needs collapse rules")


def test_stop_sweep_when_that_can_never_trip_is_advised(sweeps):
    spec = load_sweep(sweep(sweeps, collapse=[RULE], num_samples=4, stop_sweep_when={"after_trials": 5}))
    assert_says(" ".join(map(str, spec.advice())), "stop_sweep_when.after_trials: is 5, more than the sweep's 4 trials")
    spec = load_sweep(sweep(sweeps, collapse=[RULE], num_samples=5, stop_sweep_when={"after_trials": 5}))
    assert "stop_sweep_when.after_trials" not in [e.key for e in spec.advice()]
