"""Hostile and broken sweep files: every one ends in SpecError with a message, never an
internal traceback, and nothing in a YAML file is ever executed."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collapsetune.errors import SpecError
from collapsetune.spec import load_sweep

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
