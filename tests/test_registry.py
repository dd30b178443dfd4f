"""Wrapper lookup by short name or "module:Class", and which wrappers Ray workers must be sent."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from collapsetune import registry
from collapsetune.errors import SpecError
from collapsetune.registry import TRAINABLES, resolve_trainable, wrapper_module_path

TOY = """
class Toy:
    def __init__(self, config):
        self.config = config

    def step(self):
        return {"val/loss": 1.0}


class NoStep:
    def __init__(self, config):
        pass


not_a_class = 3
"""


@pytest.fixture
def wrappers(tmp_path: Path):
    """tmp_path with regwrap.py, a package regpkg/ and two broken modules; none importable before."""
    (tmp_path / "regwrap.py").write_text(TOY)
    (tmp_path / "regpkg").mkdir()
    (tmp_path / "regpkg" / "__init__.py").write_text("")
    (tmp_path / "regpkg" / "models.py").write_text(TOY)
    (tmp_path / "regbroken.py").write_text("import no_such_dependency_xyz\n")
    (tmp_path / "regcrash.py").write_text("raise RuntimeError('boom at import')\n")
    names = ["regwrap", "regpkg", "regpkg.models", "regbroken", "regcrash"]
    for name in names:
        sys.modules.pop(name, None)
    yield tmp_path
    for name in names:
        sys.modules.pop(name, None)


def test_registry_is_a_plain_dict_of_module_class():
    assert set(TRAINABLES) == {"bitnet_lm", "mop_clip", "audio_caption"}
    assert all(":" in target for target in TRAINABLES.values())


def test_module_class_resolves_from_search_dir(wrappers):
    before = list(sys.path)
    assert resolve_trainable("regwrap:Toy", [wrappers]).__name__ == "Toy"
    assert resolve_trainable("regpkg.models:Toy", [wrappers]).__module__ == "regpkg.models"
    assert sys.path == before  # search dirs are only there while importing


def test_unknown_short_name_lists_valid_names():
    with pytest.raises(SpecError, match=r"unknown trainable 'bitnet_l'.*did you mean 'bitnet_lm'.*"
                                        r"audio_caption, bitnet_lm, mop_clip"):
        resolve_trainable("bitnet_l")


def test_builtin_not_written_yet_is_not_available(monkeypatch):
    monkeypatch.setitem(registry.TRAINABLES, "ghost", "trainables.ghost_model:Ghost")
    with pytest.raises(SpecError, match="built-in trainable 'ghost' is not available"):
        resolve_trainable("ghost")


def test_missing_module_names_the_import_error(wrappers):
    with pytest.raises(SpecError, match="cannot import module 'nosuchmod_xyz'.*No module named 'nosuchmod_xyz'"):
        resolve_trainable("nosuchmod_xyz:Thing", [wrappers])


def test_missing_dependency_of_module_names_the_import_error(wrappers):
    with pytest.raises(SpecError, match="cannot import module 'regbroken'.*no_such_dependency_xyz"):
        resolve_trainable("regbroken:Toy", [wrappers])


def test_module_failing_at_import_is_a_spec_error(wrappers):
    with pytest.raises(SpecError, match="RuntimeError: boom at import"):
        resolve_trainable("regcrash:Toy", [wrappers])


@pytest.mark.parametrize(("name", "says"), [
    ("regwrap:Nope", "module 'regwrap' has no class 'Nope'"),
    ("regwrap:not_a_class", "has no class 'not_a_class' \\(found int\\)"),
    ("regwrap:NoStep", "has no step\\(\\) method"),
    ("reg wrap:Toy", "expected 'package.module:Class'"),
    (".regwrap:Toy", "expected 'package.module:Class'"),
    ("regwrap:", "expected 'package.module:Class'"),
])
def test_bad_module_class(wrappers, name, says):
    with pytest.raises(SpecError, match=says):
        resolve_trainable(name, [wrappers])


def test_wrapper_module_path_for_local_module_and_package(wrappers):
    assert wrapper_module_path("regwrap:Toy", [wrappers]) == (wrappers / "regwrap.py").resolve()
    assert wrapper_module_path("regpkg.models:Toy", [wrappers]) == (wrappers / "regpkg").resolve()


@pytest.mark.parametrize("name", ["bitnet_lm", "trainables.anything:X", "collapsetune.x:Y",
                                  "json.decoder:JSONDecoder", "yaml:Loader", "nosuchmod_xyz:X"])
def test_wrapper_module_path_none_for_installed_or_missing(name):
    assert wrapper_module_path(name) is None
