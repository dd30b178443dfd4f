"""Thin model wrappers: config dict in, metrics dict out. None of them imports Ray."""
