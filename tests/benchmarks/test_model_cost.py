from __future__ import annotations

import functools
import importlib
import importlib.util
import time

import pytest

from benchmarks import model_cost
from collapsetune.metrics import unique_tokens
from collapsetune.registry import TRAINABLES


def test_stopwatch_passes_return_values_and_counts_calls():
    watch = model_cost.Stopwatch()
    timed = watch.wrap(unique_tokens, "metrics", "unique_tokens")
    assert timed([[1, 2, 2], [3]]) == 3.0
    assert timed([[1]]) == 1.0
    assert watch.calls["unique_tokens"] == 2
    assert watch.seconds["metrics"] > 0
    assert timed.__name__ == "unique_tokens"


def test_stopwatch_times_a_nested_call_once_per_label():
    watch = model_cost.Stopwatch()
    inner = watch.wrap(lambda: time.sleep(0.02), "metrics", "inner")
    other = watch.wrap(lambda: time.sleep(0.02), "needed", "other")

    def outer_body():
        inner()
        other()
        time.sleep(0.02)

    start = time.perf_counter()
    watch.wrap(outer_body, "metrics", "outer")()
    wall = time.perf_counter() - start
    assert watch.calls == {"outer": 1, "inner": 1, "other": 1}
    assert 0.06 <= watch.seconds["metrics"] <= wall  # counting inner again would exceed the wall time
    assert 0.02 <= watch.seconds["needed"] < watch.seconds["metrics"]  # timed for its own label too


def test_stopwatch_keeps_timing_after_a_raise():
    watch = model_cost.Stopwatch()
    timed = watch.wrap(lambda n: 1 / n, "metrics", "div")
    with pytest.raises(ZeroDivisionError):
        timed(0)
    first = watch.seconds["metrics"]
    assert timed(2) == 0.5
    assert watch.seconds["metrics"] > first  # the raise did not leave the label "inside a call"


def test_timed_names_exist_in_the_trainables_modules():
    for name, labels in model_cost.TIMED.items():
        module = importlib.import_module(TRAINABLES[name].split(":")[0])
        for dotted in (n for names in labels.values() for n in names if not n.startswith("self.")):
            assert callable(functools.reduce(getattr, dotted.split("."), module)), f"{name}: {dotted}"


def test_stopwatch_unless_skips_calls_inside_that_label():
    watch = model_cost.Stopwatch()
    encode = watch.wrap(lambda: time.sleep(0.02), "needed", "encode", unless="forward")
    forward = watch.wrap(lambda: encode(), "forward", "forward")
    forward()
    assert watch.seconds["needed"] == 0.0 and watch.calls["encode"] == 1
    encode()
    assert watch.seconds["needed"] >= 0.02
