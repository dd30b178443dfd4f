"""`resume` checks a results folder's launch files before it touches anything (issue 22):
a damaged collapsetune.json or a sweep.yaml edited since the launch is a one-line error, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from collapsetune.cli import main
from collapsetune.launch import _write_launch_files
from collapsetune.names import LAUNCH_FILE, SWEEP_FILE
from collapsetune.spec import load_sweep

SWEEP = """\
name: toy
trainable: bitnet_lm
search_space: {lr: {loguniform: [1.0e-4, 1.0e-2]}}
objective: {metric: val/loss, mode: min}
max_iterations: 4
collapse: [{metric: collapse/unique_tokens, below: 20}]
mlflow: {tracking_uri: null}
"""


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """A results folder as `run` leaves it before Ray's first snapshot."""
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(SWEEP)
    folder = tmp_path / "results" / "toy-1"
    folder.mkdir(parents=True)
    _write_launch_files(load_sweep(sweep), str(folder), "abc")
    return folder


def _resume(folder: Path, capsys) -> str:
    assert main(["resume", str(folder)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_unchanged_launch_files_pass_to_the_snapshot_check(results, capsys):
    assert "Ray saved no experiment snapshot here" in _resume(results, capsys)


def test_resume_refuses_a_sweep_edited_since_the_launch_naming_the_keys(results, capsys):
    data = yaml.safe_load((results / SWEEP_FILE).read_text())
    data["search_space"] = {"wd": data["search_space"].pop("lr")}
    data["name"], data["max_iterations"] = "other", 40
    (results / SWEEP_FILE).write_text(yaml.safe_dump(data, sort_keys=False))
    err = _resume(results, capsys)
    assert (f"{results}/{SWEEP_FILE}: was changed since the launch (name, search_space.lr, search_space.wd, "
            "max_iterations differ); resume runs a sweep as it was launched") in err
    assert "40" not in err and "other" not in err


@pytest.mark.parametrize("content", ["{not json", "\xff\xfe", "[1, 2]", '{"source": 1}'])
def test_resume_of_damaged_launch_facts_is_a_one_line_error(results, capsys, content):
    (results / LAUNCH_FILE).write_bytes(content.encode("latin-1"))
    err = _resume(results, capsys)
    assert f"{results}/{LAUNCH_FILE}: " in err and "this folder cannot be resumed" in err


def test_launch_facts_keep_the_sweep_the_launch_ran(results):
    launch = json.loads((results / LAUNCH_FILE).read_text())
    assert launch["sweep"] == (results / SWEEP_FILE).read_text()


def test_resume_of_a_bucket_that_does_not_answer_is_a_one_line_error(capsys):
    # Offline, pyarrow's S3 region lookup fails after about 10 s (the check stops waiting at 5 s);
    # online, S3 says the bucket does not exist. Either way: one line naming the folder.
    assert main(["resume", "s3://collapsetune-no-such-bucket-22/x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("collapsetune: error: s3://collapsetune-no-such-bucket-22/x: ") and err.count("\n") == 1, err
