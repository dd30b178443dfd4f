"""`collapsetune validate` and `run` on what only the spec can judge: advice, folders, wrong types."""

from __future__ import annotations

from pathlib import Path

import pytest

from collapsetune.cli import main

SWEEP = """\
name: toy
trainable: cliwrap:Toy
search_space:
  include: [reg.yaml]
  width: {randint: [1, 8]}
config: {hidden: 64, act: relu}
objective: {metric: val/loss, mode: min}
max_iterations: 6
scheduler: {type: asha, grace_period: 1}
collapse: [{metric: collapse/unique_tokens, below: 20, grace: 2, patience: 2}]
"""


@pytest.fixture
def sweep(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cliwrap.py").write_text("class Toy:\n    def __init__(self, config):\n        pass\n\n"
                                         "    def step(self):\n        return {'val/loss': 1.0}\n")
    (tmp_path / "reg.yaml").write_text("lr: {loguniform: [1.0e-4, 1.0e-2]}\nsmooth: {choice: [0.0, 0.1]}\n")
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP)
    return path


def test_validate_warns_when_asha_rung_comes_before_a_collapse_verdict(sweep, capsys):
    assert main(["validate", str(sweep)]) == 0
    out, err = capsys.readouterr()
    assert (f"collapsetune: warning: {sweep}: scheduler.grace_period: 1 comes before report 4 "
            "(the earliest a collapse rule can fire") in err
    assert "set grace_period >= 4" in err and "name: toy" in out


def test_validate_is_quiet_when_the_rung_sees_the_verdict(sweep, capsys):
    for fix in (["--set", "scheduler.grace_period=4"], ["--set", "scheduler={type: fifo}"]):
        assert main(["validate", str(sweep), *fix]) == 0
        assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_folder_says_a_sweep_file_is_expected(sweep, capsys, command):
    assert main([command, "."]) == 2
    err = capsys.readouterr().err
    assert ("collapsetune: error: .: is a folder; expected a sweep YAML file; "
            "the YAML files in it: reg.yaml, sweep.yaml") in err


@pytest.mark.parametrize(("override", "says"), [
    ("search_space.lr=abc", "search_space.lr: expected a number (reg.yaml makes it a loguniform dimension), "
                            "got 'abc' (set by override 'search_space.lr=abc')"),
    ("search_space.smooth={choice: [0.1, high]}", "search_space.smooth: expected a number (reg.yaml makes it "
                                                  "a choice dimension), got 'high'"),
    ("search_space.width=2.5", "search_space.width: override 'search_space.width=2.5': expected an integer "
                               "(the file makes it {'randint': [1, 8]}), got 2.5"),
    ("config.hidden=big", "config.hidden: override 'config.hidden=big': expected a number (the file makes it 64), "
                          "got 'big'"),
    ("search_space.lr={loguniform: [abc, 1]}", "search_space.lr: loguniform expects [low, high] numbers"),
])
def test_wrong_type_constants_fail_validate(sweep, capsys, override, says):
    assert main(["validate", str(sweep), "--set", override]) == 2
    assert says in capsys.readouterr().err


@pytest.mark.parametrize("override", ["search_space.lr=0.001", "search_space.lr={choice: [0.001, 0.01]}",
                                      "search_space.width=3", "config.hidden=96.5", "config.act=gelu",
                                      "search_space.lr=null", "config.hidden=null"])
def test_same_type_overrides_pass(sweep, capsys, override):
    assert main(["validate", str(sweep), "--set", override]) == 0, capsys.readouterr().err


def test_inline_dimension_replacing_a_fragment_keeps_its_type(sweep):
    sweep.write_text(SWEEP.replace("  width:", "  lr: fast\n  width:"))
    assert main(["validate", str(sweep)]) == 2


def test_wrapper_that_exits_on_import_is_a_one_line_error(sweep, capsys):
    (sweep.parent / "exitwrap.py").write_text("import sys\nsys.exit('usage: exitwrap.py DATA')\n")
    sweep.write_text(SWEEP.replace("cliwrap:Toy", "exitwrap:Toy"))
    assert main(["validate", str(sweep)]) == 2
    err = capsys.readouterr().err
    assert ("trainable: importing module 'exitwrap' for trainable 'exitwrap:Toy' ended with "
            "SystemExit('usage: exitwrap.py DATA')") in err
    assert len(err.strip().splitlines()) == 1, err


def test_several_problems_print_one_per_line_with_each_line_escaped(sweep, capsys):
    """The list of problems is read on a terminal: its line breaks are kept, while a control
    character inside a problem (here an override's escape code) is still shown, not sent."""
    assert main(["validate", str(sweep), "--set", "max_iterations=0", "--set", "num_samples=-1",
                 "--set", 'search_space.lr="\\e[31mred"']) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[0] == "collapsetune: error: 3 problems:", err
    assert [line.startswith("  - ") for line in lines[1:]] == [True, True, True], err
    assert "\x1b" not in err and "\\x1b[31m" in err
