"""One resolver for `storage:` and results folders: `~`, relative folders and URIs."""

from __future__ import annotations


import pytest

from collapsetune.storage import location, read_text, write_text


def test_location_expands_home_and_makes_folders_absolute(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert location("~/results") == str((tmp_path / "home" / "results").resolve())
    assert location("results") == str((tmp_path / "results").resolve())
    assert location("s3://bucket/results/") == "s3://bucket/results"
    assert location("file:///data/results") == "file:///data/results"


def test_run_resolves_storage_with_location():
    """`run_sweep` builds its results folder from `location(spec.storage)`: no second resolver."""
    pytest.importorskip("ray")
    from collapsetune import launch

    assert launch.location is location


def test_files_under_home_storage_land_in_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    write_text("~/results/sweep-1", "sweep.yaml", "name: x\n")
    assert (tmp_path / "home" / "results" / "sweep-1" / "sweep.yaml").read_text() == "name: x\n"
    assert read_text("~/results/sweep-1", "sweep.yaml") == "name: x\n"
    assert not (tmp_path / "~").exists()
