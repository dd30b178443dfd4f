"""A helper package that a test wrapper imports (tests/e2e/helped_wrapper.py)."""


def answer() -> float:
    return 42.0
