"""Wrapper lookup by short name or "module:Class", and which wrappers Ray workers must be sent."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from collapsetune import registry
from collapsetune.errors import SpecError
from collapsetune.registry import TRAINABLES, resolve_trainable, wrapper_module_path, wrapper_modules

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
    ("regwrap:Nope", "module 'regwrap' has no class or function 'Nope'"),
    ("regwrap:not_a_class", "has no class or function 'not_a_class' \\(found int\\)"),
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


def test_the_wrapper_ships_with_the_local_modules_it_imports_and_nothing_else(tmp_path):
    # shipwrap imports shiphelp (inside a function too), which imports the package shiplib;
    # scratch.py beside them raises on import and is neither imported nor shipped.
    (tmp_path / "shipwrap.py").write_text("import json\nimport shiphelp\n" + TOY
                                          + "\ndef later():\n    from shiplib.sub import X\n    return X\n")
    (tmp_path / "shiphelp.py").write_text("from shiplib import Y\nimport trainables\n")
    (tmp_path / "shiplib").mkdir()
    (tmp_path / "shiplib" / "__init__.py").write_text("Y = 1\n")
    (tmp_path / "shiplib" / "sub.py").write_text("X = 2\n")
    (tmp_path / "scratch.py").write_text("raise RuntimeError('a scratch script, never imported')\n")
    (tmp_path / "data.csv").write_text("a,b\n")
    (tmp_path / "trainables").mkdir()  # planted: must not shadow the installed package
    (tmp_path / "trainables" / "__init__.py").write_text("")
    shipped = wrapper_modules("shipwrap:Toy", [tmp_path])
    assert shipped == [(tmp_path / n).resolve() for n in ("shipwrap.py", "shiphelp.py", "shiplib")]
    assert wrapper_modules("bitnet_lm") == []


@pytest.mark.parametrize("name", ["bitnet_lm", "trainables.anything:X", "collapsetune.x:Y",
                                  "json.decoder:JSONDecoder", "yaml:Loader", "nosuchmod_xyz:X"])
def test_wrapper_module_path_none_for_installed_or_missing(name):
    assert wrapper_module_path(name) is None


def _plant_trainables(folder: Path, marker: Path) -> None:
    """A `trainables` package that would write `marker` if it were ever imported."""
    package = folder / "trainables"
    package.mkdir(parents=True)
    code = f"open({str(marker)!r}, 'a').write({str(folder)!r} + '\\n')\n"
    (package / "__init__.py").write_text(code)
    (package / "bitnet_lm.py").write_text(code + TOY.replace("class Toy", "class BitNetLM"))


def test_builtin_name_never_imports_a_trainables_folder_beside_the_sweep_or_in_the_cwd(tmp_path, monkeypatch):
    """Issue 16.7: only a sweep naming `module:Class` imports code from the sweep folder or the cwd."""
    marker = tmp_path / "planted-code-ran"
    sweeps, cwd = tmp_path / "sweeps", tmp_path / "work"
    for folder in (sweeps, cwd):
        _plant_trainables(folder, marker)
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "path", ["", str(cwd), *sys.path])  # as `python -c` and `python -m` leave it
    for name in [m for m in sys.modules if m == "trainables" or m.startswith("trainables.")]:
        monkeypatch.delitem(sys.modules, name)  # restored afterwards; the import below is a fresh one
    cls = resolve_trainable("bitnet_lm", [sweeps, cwd])
    assert not marker.exists(), marker.read_text()
    assert not Path(sys.modules[cls.__module__].__file__).resolve().is_relative_to(tmp_path.resolve())
    from collapsetune.spec import load_sweep  # what `validate` and `run` do with the same sweep

    (sweeps / "sweep.yaml").write_text("name: x\ntrainable: bitnet_lm\nobjective: {metric: val/loss, mode: min}\n")
    load_sweep(sweeps / "sweep.yaml")
    assert not marker.exists()


def test_case_only_class_typo_says_did_you_mean(wrappers):
    with pytest.raises(SpecError, match=r"module 'regwrap' has no class or function 'toy' \(no such attribute\) "
                                        r"\(did you mean 'Toy'\?\)"):
        resolve_trainable("regwrap:toy", [wrappers])
    with pytest.raises(SpecError, match=r"did you mean 'NoStep'"):
        resolve_trainable("regwrap:NoStp", [wrappers])


def test_search_folder_is_listed_once(wrappers):
    with pytest.raises(SpecError) as info:
        resolve_trainable("nosuchmod_xyz:Thing", [wrappers, wrappers / ".", Path(str(wrappers) + "/")])
    assert str(info.value).count(str(wrappers.resolve())) == 1
