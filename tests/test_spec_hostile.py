"""Hostile and broken sweep files: every one ends in SpecError with a message, never an
internal traceback, and nothing in a YAML file is ever executed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collapsetune.errors import SpecError
from collapsetune.spec import load_sweep
from collapsetune.spec._load import MAX_BYTES, MAX_DEPTH, MAX_NODES
from collapsetune.spec._places import NAME_MAX
from collapsetune.tracking import PARAM_KEY_MAX

VALID = """\
name: toy
trainable: bitnet_lm
search_space: {lr: {loguniform: [1.0e-4, 1.0e-2]}}
objective: {metric: val/loss, mode: min}
collapse: [{metric: collapse/unique_tokens, below: 20}]
"""
# Pieces of YAML syntax, so mutations reach the parser's corners and not only plain text.
TOKENS = st.sampled_from(
    [":", "- ", "{", "}", "[", "]", "&a ", "*a", "!!str ", "!!binary ", "? ", "|", ">", "#",
     "'", '"', "\t", "\n", "  ", "%YAML 1.2\n", "---\n", "...\n", "\x00", "\ufeff", "!!python/name:os.system"]
)


def _load(tmp_path: Path, text: str | bytes) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    try:
        load_sweep(path)
    except SpecError as error:
        assert str(error).strip(), "an error must say what is wrong"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, len(VALID)), insert=st.lists(TOKENS | st.text(max_size=6), max_size=4))
def test_mutated_yaml_only_raises_spec_error(tmp_path, cut, insert):
    _load(tmp_path, VALID[:cut] + "".join(insert) + VALID[cut:])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_spec_error(tmp_path, data):
    _load(tmp_path, data)


def test_python_tags_are_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    payload = VALID + f"config: !!python/object/apply:os.system ['touch {marker}']\n"
    path = tmp_path / "sweep.yaml"
    path.write_text(payload)
    try:
        load_sweep(path)
    except SpecError as error:
        assert "sweep.yaml" in str(error)
    else:
        raise AssertionError("a python tag was accepted")
    assert not marker.exists()


# --- issue 15: hostile and broken inputs end in a SpecError, fast, before any trial ----------

def _error(tmp_path: Path, text: str, overrides: tuple[str, ...] = ()) -> str:
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_sweep(path, overrides)
    return str(info.value)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(width=st.integers(2, 12), levels=st.integers(5, 12), flow=st.booleans())
def test_alias_bomb_is_refused_by_the_loader(tmp_path, width, levels, flow):
    """A "billion laughs" document: each level names the previous one `width` times."""
    lines = ["  l0: &l0 [lol, lol]"]
    for i in range(1, levels + 1):
        refs = [f"*l{i - 1}"] * width
        lines.append(f"  l{i}: &l{i} [{', '.join(refs)}]" if flow else
                     f"  l{i}: &l{i}\n" + "".join(f"    - {r}\n" for r in refs).rstrip("\n"))
    if width ** levels <= MAX_NODES:  # small enough to be a legitimate document
        return
    text = _error(tmp_path, VALID + "config:\n" + "\n".join(lines) + "\n")
    assert "sweep.yaml: invalid YAML at line" in text and f"more than {MAX_NODES} values" in text


def test_alias_bomb_in_an_override_is_refused(tmp_path):
    bomb = "{a: &a [x, x, x, x, x, x, x, x, x, x], " + ", ".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]" for p, c in zip("abcdefgh", "bcdefghi")) + "}"
    assert "more than" in _error(tmp_path, VALID, (f"config={bomb}",))


def test_recursive_alias_is_refused(tmp_path):
    assert "a cycle" in _error(tmp_path, VALID + "config: &c {self: *c}\n")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(depth=st.integers(MAX_DEPTH + 1, 5000), style=st.sampled_from(["flow_list", "flow_map", "block"]))
def test_deep_nesting_is_a_spec_error_not_a_recursion_error(tmp_path, depth, style):
    if style == "flow_list":
        value = "[" * depth + "1" + "]" * depth
    elif style == "flow_map":
        value = "{a: " * depth + "1" + "}" * depth
    else:
        depth = min(depth, 400)  # block style needs depth^2 characters of indentation
        value = "\n" + "".join("  " * (i + 1) + "k:\n" for i in range(depth)) + "  " * (depth + 1) + "v"
    text = _error(tmp_path, VALID + f"config: {value}\n")
    assert f"nested deeper than {MAX_DEPTH} levels" in text


def test_nesting_within_the_limit_loads(tmp_path):
    depth = MAX_DEPTH - 3  # the config mapping and the document take the other levels
    (tmp_path / "hostile_toy.py").write_text("class Toy:\n    def step(self):\n        return {}\n")
    path = tmp_path / "sweep.yaml"
    path.write_text(VALID.replace("bitnet_lm", "hostile_toy:Toy")
                    + "config: {deep: " + "[" * depth + "1" + "]" * depth + "}\n")
    spec = load_sweep(path)
    assert "deep" in spec.config


def test_huge_file_is_refused_before_parsing(tmp_path):
    text = _error(tmp_path, VALID + "config:\n" + "".join(f"  k{i}: {i}\n" for i in range(MAX_BYTES // 8)))
    assert f"larger than {MAX_BYTES // 1024} KiB" in text


@pytest.mark.parametrize(("grid", "says"), [
    ({f"g{i}": {"grid": list(range(10))} for i in range(6)}, "make 1,000,000 points; at most 10000 trials"),
    ({f"g{i}": {"grid": list(range(10))} for i in range(40)}, "make about 10^40 points"),
])
def test_huge_grid_is_refused_before_ray(tmp_path, grid, says):
    data = {**yaml.safe_load(VALID), "search_space": grid, "search": {"algorithm": "random"}}
    text = _error(tmp_path, yaml.safe_dump(data))
    assert "search_space: the grid dimensions (g0 10 x g1 10" in text and says in text


def test_grid_times_num_samples_is_bounded(tmp_path):
    text = _error(tmp_path, VALID, ("search.algorithm=random", "search_space.seed={grid: [0, 1, 2, 3]}",
                                    "num_samples=5000"))
    assert "num_samples: 5000 x 4 grid points (seed 4) = 20,000 trials; at most 10000 per launch" in text


BAD_NAMES = st.one_of(
    st.text(st.characters(codec="utf-8"), min_size=NAME_MAX + 1, max_size=400),
    st.builds(lambda a, c, b: a + c + b, st.text(max_size=5), st.sampled_from(list("\x00\n\t /\\:*?#%@!")),
              st.text(max_size=5)),
    st.sampled_from([".", "..", ".hidden", "-dash", "_" * (NAME_MAX + 1)]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=BAD_NAMES)
def test_name_unusable_as_folder_or_experiment_is_refused(tmp_path, name):
    path = tmp_path / "sweep.yaml"
    path.write_text(VALID.replace("name: toy", f"name: {json.dumps(name)}"))
    with pytest.raises(SpecError) as info:
        load_sweep(path)
    assert any(e.key == "name" and "usable as a folder" in e.message for e in info.value.errors)


def test_good_names_load(tmp_path):
    for name in ["bitnet-collapse", "a", "run_2.v3", "é-sweep", "x" * NAME_MAX]:
        path = tmp_path / "sweep.yaml"
        path.write_text(VALID.replace("name: toy", f"name: {name}"))
        assert load_sweep(path).name == name


BAD_CHARACTERS = st.builds(lambda a, c, b: a + c + b, st.text("abc_", min_size=1, max_size=4),
                           st.sampled_from(list("@!#$%^&*()+=[]{}|;'\",<>?\\~`\n\x00")), st.text("abc", max_size=4))
TOO_LONG = st.integers(PARAM_KEY_MAX + 1, 600).map(lambda n: "k" * n)
ODD_PATHS = st.sampled_from(["a//b", "a/", "/a", "./a", "a/./b", "../a", "a/.."])  # only odd at the start


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), section=st.sampled_from(["config", "search_space", "nested"]))
def test_key_mlflow_cannot_store_as_a_param_is_refused(tmp_path, data, section):
    key = data.draw(BAD_CHARACTERS | TOO_LONG | (ODD_PATHS if section != "nested" else st.nothing()))
    data = yaml.safe_load(VALID)
    if section == "nested":  # config: {opt: {<key>: 1}} is logged as the param "opt.<key>"
        data["config"] = {"opt": {key: 1}}
        where = f"config.opt.{key}"
    else:
        data.setdefault(section, {})[key] = 0.5 if section == "config" else {"uniform": [0, 1]}
        where = f"{section}.{key}"
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError) as info:
        load_sweep(path)
    assert any(e.key == where and "MLflow" in e.message for e in info.value.errors), str(info.value)


@pytest.mark.parametrize(("storage", "says"), [
    ("foo://bucket/x", "unknown URI scheme 'foo'; expected a local folder or a URI with one of file://, s3://"),
    ("file://relative/x", "a file:// URI needs an absolute path"),
    ("s3:/bucket/x", "looks like a URI without '//'; expected e.g. s3://bucket/results"),
    ("~no_such_user_xyz/results", "cannot expand '~no_such_user_xyz': no such user"),
])
def test_storage_of_unknown_form_is_refused(tmp_path, storage, says):
    assert f"storage: {says}" in _error(tmp_path, VALID + f"storage: {json.dumps(storage)}\n")


@pytest.mark.parametrize(("uri", "says"), [
    ("sqlite://mlflow.db", "expected sqlite:///relative/path.db or sqlite:////absolute/path.db"),
    ("sqlite:/mlflow.db", "expected sqlite:///relative/path.db"),
    ("sqlite:///:memory:", "expected sqlite:///relative/path.db"),
    ("http://", "no host in 'http://'"),
    ("http://127.0.0.1:port", "the port in 'http://127.0.0.1:port' is not a number"),
    ("https://user:secret@127.0.0.1:99999", "the port in 'https://127.0.0.1:99999'"),
    ("ftp://127.0.0.1/x", "unknown tracking URI scheme 'ftp'"),
    ("mysql://", "no host in 'mysql://'"),
    ("sqlite:///~/mlflow.db", "MLflow does not expand ~"),
    ("~/mlruns", "MLflow does not expand ~"),
])
def test_malformed_tracking_uri_is_refused(tmp_path, uri, says):
    text = _error(tmp_path, VALID + f"mlflow: {{tracking_uri: {json.dumps(uri)}}}\n")
    assert f"mlflow.tracking_uri: {says}" in text and "secret" not in text


@pytest.mark.parametrize(("address", "says"), [
    ("127.0.0.1", "no port in '127.0.0.1'"),
    ("127.0.0.1:abc", "the port in '127.0.0.1:abc' is not a number from 1 to 65535"),
    ("ray://127.0.0.1", "no port in 'ray://127.0.0.1'"),
    ("127.0.0.1:6379/x", "expected only host:port"),
])
def test_malformed_ray_address_is_refused(tmp_path, address, says):
    text = _error(tmp_path, VALID + f"address: {json.dumps(address)}\n")
    assert f"address: {says}" in text and "ray://host:port" in text


def test_valid_places_load(tmp_path):
    path = tmp_path / "sweep.yaml"
    for extra in ["storage: ~/results", "storage: s3://bucket/results", "storage: file:///data/results",
                  "mlflow: {tracking_uri: 'http://127.0.0.1:5000'}", "mlflow: {tracking_uri: sqlite:///mlflow.db}",
                  "mlflow: {tracking_uri: 'postgresql+psycopg2://u@127.0.0.1:5432/mlflow'}",
                  "address: auto", "address: '127.0.0.1:6379'", "address: 'ray://127.0.0.1:10001'"]:
        path.write_text(VALID + extra + "\n")
        load_sweep(path)


# --- include reads only YAML fragments, and never repeats what it read ----------------------

SECRET = "root:x:0:0:SECRET-CONTENT:/root:/bin/bash\n"


@pytest.mark.parametrize("include", ["/etc/passwd", "secrets.txt", "../secrets"])
def test_include_of_a_non_yaml_file_is_not_read(tmp_path, include):
    (tmp_path / "secrets.txt").write_text(SECRET)
    text = _error(tmp_path, VALID.replace("search_space: {", f"search_space: {{include: [{include}], "))
    assert "search_space.include: expected the name of a .yaml or .yml search-space fragment" in text
    assert "SECRET" not in text and "root:x" not in text


@pytest.mark.parametrize("content", [SECRET, SECRET * 3, "- " + SECRET, "a: *undefined_SECRET\n",
                                     "\tSECRET: 1\n", "SECRET: [unclosed\n", "\x00SECRET"])
def test_include_that_is_not_a_mapping_of_dimensions_is_not_echoed(tmp_path, content):
    (tmp_path / "foreign.yaml").write_text(content)
    text = _error(tmp_path, VALID.replace("search_space: {", "search_space: {include: [foreign.yaml], "))
    assert "foreign.yaml" in text and "SECRET" not in text and "root:x" not in text, text


def test_form_problems_are_reported_in_the_same_pass_as_unknown_keys(tmp_path):
    with pytest.raises(SpecError) as info:
        path = tmp_path / "sweep.yaml"
        path.write_text(VALID.replace("name: toy", "name: my sweep") + "num_sample: 4\nstorage: 'foo://x'\n"
                        "address: '127.0.0.1'\nmlflow: {tracking_uri: 'sqlite://m.db'}\n")
        load_sweep(path)
    keys = {e.key for e in info.value.errors}
    assert {"num_sample", "name", "storage", "address", "mlflow.tracking_uri"} <= keys


# --- issue 22: what validate let through ----------------------------------------------------

@pytest.mark.parametrize(("extra", "key", "says"), [
    ("address: 'auto:1'", "address", "auto takes no port, got 'auto:1'"),
    ("address: 'local:6379'", "address", "local takes no port"),
    ("max_iterations: 10000000000000000000000", "max_iterations", "must be <= 1_000_000"),
    ("search: {algorithm: optuna, sampler: nsga2, seed: -1}", "search.seed",
     "expected an integer from 0 to 4294967295 (numpy's seed range) or null, got -1"),
    ("search: {algorithm: random, seed: 4294967296}", "search.seed", "numpy's seed range"),
    ("search: {algorithm: random}\nscheduler: {type: pbt, mutable: [lr, lr]}", "scheduler.mutable[1]",
     "'lr' is listed twice"),
    ("mlflow: {tracking_uri: 'http//x'}", "mlflow.tracking_uri", "looks like http:// without its ':'"),
])
def test_validate_refuses_what_fails_later_at_run(tmp_path, extra, key, says):
    path = tmp_path / "sweep.yaml"
    path.write_text(VALID + extra + "\n")
    with pytest.raises(SpecError) as info:
        load_sweep(path)
    assert any(e.key == key and says in e.message for e in info.value.errors), str(info.value)


@pytest.mark.parametrize("uri", ["mlruns", "/abs/mlruns", "file:///abs/mlruns"])
def test_folder_tracking_store_is_refused_as_mlflow_3_refuses_it(tmp_path, monkeypatch, uri):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    text = _error(tmp_path, VALID + f"mlflow: {{tracking_uri: {json.dumps(uri)}}}\n")
    assert "mlflow.tracking_uri: MLflow 3 no longer opens a folder as a tracking store" in text
    assert "sqlite:///mlflow.db" in text
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow's own opt-out
    (tmp_path / "sweep.yaml").write_text(VALID + f"mlflow: {{tracking_uri: {json.dumps(uri)}}}\n")
    load_sweep(tmp_path / "sweep.yaml")


def test_folder_tracking_store_is_what_mlflow_refuses(tmp_path, monkeypatch):
    """The check above follows MLflow itself: without the opt-out it will not open a folder."""
    import mlflow
    from mlflow.exceptions import MlflowException

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(MlflowException, match="MLFLOW_ALLOW_FILE_STORE"):
        mlflow.MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri()).search_experiments()


# --- issue 22: an include never leaks what it read -------------------------------------------

SHADOW = "root:*:20228:0:99999:7:::\ndaemon:*:20228:0:99999:7:::\nbin:*:20228:0:99999:7:::\n"


def _project(tmp_path: Path) -> Path:
    """project/sweeps/sweep.yaml beside project/search_spaces/ (the layout includes look in)."""
    (tmp_path / "project" / "sweeps").mkdir(parents=True)
    (tmp_path / "project" / "search_spaces").mkdir()
    return tmp_path / "project"


def _include_error(project: Path, name: str) -> SpecError:
    path = project / "sweeps" / "sweep.yaml"
    path.write_text(VALID.replace("search_space: {", f"search_space: {{include: [{name}], "))
    with pytest.raises(SpecError) as info:
        load_sweep(path)
    return info.value


@pytest.mark.parametrize("target", ["outside", "/etc/shadow"])
def test_include_linked_outside_the_project_is_refused_in_one_line(tmp_path, monkeypatch, target):
    project = _project(tmp_path)
    monkeypatch.chdir(project)
    secret = tmp_path / "elsewhere" / "shadow"
    secret.parent.mkdir()
    secret.write_text(SHADOW)
    real = secret if target == "outside" else Path(target)
    if not real.is_file():
        pytest.skip(f"{target} does not exist here")
    (project / "search_spaces" / "leak.yaml").symlink_to(real)
    error = _include_error(project, "leak.yaml")
    assert len(error.errors) == 1 and "\n" not in str(error), str(error)
    assert error.key == "search_space.include" and "leads outside the folders includes are read from" in str(error)
    assert "root:" not in str(error) and "20228" not in str(error) and "shadow" not in str(error)


def test_include_of_a_file_full_of_odd_keys_is_one_error_quoting_none(tmp_path, monkeypatch):
    project = _project(tmp_path)
    monkeypatch.chdir(project)
    (project / "search_spaces" / "copied.yaml").write_text(SHADOW)  # a foreign file copied in
    error = _include_error(project, "copied.yaml")
    assert len(error.errors) == 1, str(error)
    assert str(error).startswith("search_spaces/copied.yaml: search_space: 3 key(s) (entries 1, 2, 3) are not "
                                 "dimension names")
    assert "root:" not in str(error) and "20228" not in str(error)


@pytest.mark.parametrize(("content", "key"), [
    ("label_smoothing: {wJalrXUtnFEMI: 1}\n", "search_space.label_smoothing"),
    ("label_smoothing: {loguniform: [0.0, wJalrXUtnFEMI]}\n", "search_space.label_smoothing"),
    ("label_smoothing: {choice: {wJalrXUtnFEMI: 1}}\n", "search_space.label_smoothing"),
    ("label_smoothing: {uniform: [1, 2], choice: ['wJalrXUtnFEMI']}\n", "search_space.label_smoothing"),
    ("label_smoothing: {choice: ['wJalrXUtnFEMI', \"it's;wJalrXUtnFEMI\"]}\n", "search_space.label_smoothing"),  # bitnet_lm: a number
])
def test_error_about_an_included_dimension_names_file_and_key_and_no_value(tmp_path, monkeypatch, content, key):
    project = _project(tmp_path)
    monkeypatch.chdir(project)
    (project / "search_spaces" / "creds.yaml").write_text(content)
    error = _include_error(project, "creds.yaml")
    assert "wJalrXUtnFEMI" not in str(error), str(error)
    assert any(e.file == "search_spaces/creds.yaml" and e.key == key for e in error.errors), str(error)


def test_include_inside_the_project_through_a_link_still_loads(tmp_path, monkeypatch):
    project = _project(tmp_path)
    monkeypatch.chdir(project)
    (project / "search_spaces" / "real.yaml").write_text("label_smoothing: {uniform: [0.0, 0.2]}\n")
    (project / "search_spaces" / "alias.yaml").symlink_to(project / "search_spaces" / "real.yaml")
    path = project / "sweeps" / "sweep.yaml"
    path.write_text(VALID.replace("search_space: {", "search_space: {include: [alias.yaml], "))
    assert load_sweep(path).search_space["label_smoothing"].kind == "uniform"
