"""`search.warm_start` as `load_sweep` and `collapsetune validate` judge it, before any Ray:
its form, the algorithm it needs, and a folder that is not a collapsetune results folder.
What it does with a real results folder is in tests/e2e/test_warm_start_sweeps.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from collapsetune.cli import main
from collapsetune.errors import SpecError
from collapsetune.spec import load_sweep

SWEEP = """\
name: toy
trainable: wrap:Toy
search_space: {lr: {loguniform: [1.0e-4, 1.0e-2]}}
objective: {metric: val/loss, mode: min}
max_iterations: 6
scheduler: {type: fifo}
collapse: [{metric: collapse/unique_tokens, below: 20, grace: 1, patience: 2}]
"""


@pytest.fixture
def sweep(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wrap.py").write_text("class Toy:\n    def __init__(self, config):\n        pass\n\n"
                                      "    def step(self):\n        return {'val/loss': 1.0}\n")
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP)
    return path


def test_warm_start_takes_one_folder_or_a_list(sweep):
    assert load_sweep(sweep, ["search.warm_start=results/a"]).search.warm_start == ("results/a",)
    assert load_sweep(sweep, ["search.warm_start=[results/a, results/b]"]).search.warm_start == (
        "results/a", "results/b")


def test_warm_start_needs_optuna(sweep):
    with pytest.raises(SpecError, match="search.warm_start: needs algorithm: optuna"):
        load_sweep(sweep, ["search={algorithm: random, warm_start: [results/a]}"])


def test_validate_refuses_a_missing_folder_in_one_line(sweep, capsys):
    assert main(["validate", str(sweep), "--set", "search.warm_start=results/gone"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"{sweep}: search.warm_start: 'results/gone' is not a folder; expected the results folder" in err


def test_validate_refuses_a_folder_that_is_not_a_results_folder(sweep, capsys, tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "sweep.yaml").write_text(SWEEP)  # a sweep file, but no launch record or Ray state
    assert main(["validate", str(sweep), "--set", "search.warm_start=[other, other]"]) == 2
    err = capsys.readouterr().err
    assert ("search.warm_start[0]: 'other' is not a collapsetune results folder (collapsetune.json missing)"
            in err), err
    assert "search.warm_start[1]:" in err


def _results_folder(path: Path, state: str = '{"trial_data": []}') -> Path:
    """A folder laid out as `collapsetune run` leaves one: the resolved sweep, the launch
    record and Ray's experiment state (`state`, its text)."""
    path.mkdir()
    (path / "sweep.yaml").write_text(SWEEP)
    (path / "collapsetune.json").write_text("{}")
    (path / "experiment_state-2026-12-05_10-15-00.json").write_text(state)
    return path


def test_the_refusal_names_the_files_a_results_folder_holds(sweep, capsys):
    assert main(["validate", str(sweep), "--set", "search.warm_start=gone"]) == 2
    err = capsys.readouterr().err
    assert "holding sweep.yaml, collapsetune.json and Ray's experiment_state-*.json" in err, err


def test_validate_refuses_the_same_folder_twice(sweep, capsys, tmp_path):
    _results_folder(tmp_path / "prev")
    assert main(["validate", str(sweep), "--set", "search.warm_start=[prev, ./prev/]"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert ("search.warm_start[1]: './prev/' is the folder search.warm_start[0] names already; "
            "expected each results folder once") in err, err


def test_validate_refuses_a_damaged_experiment_state_without_echoing_it(sweep, capsys, tmp_path):
    _results_folder(tmp_path / "prev", state='{"trial_data": ["wJalrXUtnFEMI')  # cut off mid-write
    assert main(["validate", str(sweep), "--set", "search.warm_start=prev"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert ("search.warm_start: 'prev' holds an experiment state Ray cannot read (JSONDecodeError); "
            "expected the results folder of an earlier collapsetune sweep") in err, err
    assert "wJalrXUtnFEMI" not in err


def test_validate_refuses_the_folder_of_a_sweep_still_running(sweep, capsys, tmp_path):
    from collapsetune.storage import driver_lock

    folder = _results_folder(tmp_path / "prev")
    with driver_lock(str(folder)):  # its driver is alive: the folder's trials are not all ended yet
        assert main(["validate", str(sweep), "--set", "search.warm_start=prev"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert ("search.warm_start: 'prev' is the results folder of a sweep still running (a driver holds its "
            ".driver.lock); expected the folder of a sweep that has ended: warm-start once it ends") in err, err
    assert main(["validate", str(sweep), "--set", "search.warm_start=prev"]) == 0  # once it ended


def test_validate_refuses_a_symlink_loop_one_line_a_folder(sweep, capsys, tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert main(["validate", str(sweep), "--set", "search.warm_start=[a, b]"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 3 and err.startswith("collapsetune: error: 2 problems:\n"), err  # no traceback
    assert "search.warm_start[0]: 'a' is not a folder; expected the results folder" in err, err
    assert "search.warm_start[1]: 'b' is not a folder" in err, err


def test_the_warm_start_line_shows_a_folder_name_escaped(tmp_path, capsys):
    from ray import tune

    from collapsetune.searchers import CollapseOptunaSearch, make_sampler

    folder = _results_folder(tmp_path / "prev\x1b]0;owned\x07\x1b[31m")  # a name that retitles the terminal
    searcher = CollapseOptunaSearch(sampler=make_sampler("tpe", 0), seed=0, warm_start=[str(folder)])
    searcher.set_search_properties("objective", "min", {"lr": tune.loguniform(1e-3, 0.3)})
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out, repr(out)
    assert out.startswith("collapsetune: warm start: 0 trials from ") and "prev\\x1b]0;owned" in out, out


def test_a_study_rebuilt_after_its_warm_start_folder_is_gone_leaves_those_trials_out(tmp_path, capsys):
    # A warm-started sweep's optuna.db is damaged, and the earlier sweep's folder has been
    # deleted since the launch: resume rebuilds the study without it, and says so.
    import shutil

    from ray import tune

    from collapsetune.searchers import CollapseOptunaSearch, make_sampler, study_storage

    earlier, own = _results_folder(tmp_path / "prev"), _results_folder(tmp_path / "own")
    db = own / "optuna.db"
    searcher = CollapseOptunaSearch(sampler=make_sampler("tpe", 0), seed=0, storage=study_storage(str(db)),
                                    study_name="own", warm_start=[str(earlier)])
    searcher.set_search_properties("objective", "min", {"lr": tune.loguniform(1e-3, 0.3)})
    shutil.rmtree(earlier)
    db.write_bytes(b"not a database")
    capsys.readouterr()
    searcher._rebuild(db, ValueError("damaged"))
    out = capsys.readouterr().out
    assert (f"collapsetune: warm start: {earlier} could not be read (ValueError); its trials are left out "
            "of the study") in out, out
    assert "rebuilt it from the results folder" in out, out
