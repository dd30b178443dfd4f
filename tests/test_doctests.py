"""Every `>>>` example in src/collapsetune runs, so a docstring's example cannot drift from the
code it shows. The few that need a Ray cluster, a server, weights or data from outside are
marked `# doctest: +SKIP` where they stand, with the reason beside them."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import collapsetune

MODULES = sorted(m.name for m in pkgutil.walk_packages(collapsetune.__path__, "collapsetune."))


@pytest.mark.parametrize("name", ["collapsetune", *MODULES])
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here, never into the checkout
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    failures: list[str] = []
    for test in doctest.DocTestFinder(exclude_empty=True).find(module, name):
        runner.run(test, out=failures.append)
    assert runner.failures == 0, "".join(failures)
