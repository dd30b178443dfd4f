"""collapsetune._ray: every Ray internal collapsetune relies on is listed, checked at import
against the installed Ray, and reached only from inside collapsetune/_ray/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import ray

from collapsetune import _ray
from collapsetune._ray import RELIED_ON, Internal, RayInternalsMoved, check, missing

SRC = Path(_ray.__file__).resolve().parents[1]


def test_every_internal_listed_is_in_the_installed_ray():
    assert missing() == [], f"Ray {ray.__version__} lacks: {', '.join(map(str, missing()))}"


def test_a_missing_name_is_named_with_the_ray_version():
    gone = (
        Internal("ray.tune.schedulers.async_hyperband", "_Bracket._rungs_renamed", "CollapseASHA", instance=True),
        Internal("ray.tune.schedulers.pbt", "PopulationBasedTraining._exploit_gone", "CollapsePBT overrides it"),
        Internal("ray.tune.no_such_module", "anything", "fix 9"),
    )
    with pytest.raises(RayInternalsMoved) as raised:
        check(RELIED_ON[:3] + gone)
    said = str(raised.value)
    assert f"Ray {ray.__version__}" in said and "pip install 'ray[tune]>=2.60,<2.61'" in said
    for internal in gone:
        assert f"{internal} ({internal.why})" in said
    assert str(RELIED_ON[0]) not in said


def test_an_instance_attribute_is_found_only_where_ray_assigns_it():
    pbt = "ray.tune.schedulers.pbt"
    assert missing((Internal(pbt, "PopulationBasedTraining._trial_state", "", instance=True),)) == []
    # read but never assigned by PopulationBasedTraining or its bases
    assert len(missing((Internal(pbt, "PopulationBasedTraining._nothing_here", "", instance=True),))) == 1


def test_the_pin_is_the_one_pyproject_has():
    pyproject = (SRC.parents[1] / "pyproject.toml").read_text()
    assert f'"{_ray.REQUIRES}"' in pyproject


_PRIVATE_IMPORT = re.compile(r"^\s*(from|import)\s+ray(\.\w+)*\.(_\w+)", re.M)
_PRIVATE_NAME = re.compile(r"^\s*from\s+ray[\w.]*\s+import\s+.*\b_[A-Za-z]\w*", re.M)


def test_no_module_outside_ray_adapter_imports_ray_internals():
    outside = [p for p in SRC.rglob("*.py") if "_ray" not in p.relative_to(SRC).parts]
    offenders = [f"{p.relative_to(SRC)}: {m.group(0).strip()}" for p in outside
                 for pattern in (_PRIVATE_IMPORT, _PRIVATE_NAME) for m in pattern.finditer(p.read_text())]
    assert offenders == []


def test_without_ray_sources_an_instance_attribute_is_not_called_missing(monkeypatch):
    """A Ray installed without its .py files (compiled only) hides where an attribute is
    assigned: the check cannot see it, and must not call every such name gone."""
    import importlib
    import inspect

    from collapsetune._ray import _check

    instance = [i for i in RELIED_ON if i.instance]
    sources = {}
    for internal in instance:
        owner = importlib.import_module(internal.module)
        for part in internal.name.split(".")[:-1]:
            owner = getattr(owner, part)
        sources.update({cls.__module__: "" for cls in inspect.getmro(owner)})
    monkeypatch.setattr(_check, "_SOURCES", sources)
    assert instance and missing(tuple(instance)) == []
