"""`collapsetune run | resume | report | validate | features | dashboard`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from collapsetune.errors import RayInternalsMoved, RestoreFailed, SpecError
from collapsetune.escape import terminal


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="collapsetune", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="launch a sweep")
    run.add_argument("sweep", help="sweep YAML file, e.g. sweeps/bitnet_lm.yaml")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a sweep key, e.g. --set num_samples=4 --set search_space.lr=0.01")
    run.add_argument("--address", help="Ray cluster address (same as --set address=...)")

    validate = commands.add_parser("validate", help="print the resolved sweep or its errors")
    validate.add_argument("sweep")
    validate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")

    resume = commands.add_parser("resume", help="finish an interrupted sweep")
    resume.add_argument("results_dir", help="the sweep's results folder, e.g. results/bitnet-collapse-20261122-150000")
    resume.add_argument("--older-snapshot", action="store_true",
                        help="when Ray's latest experiment snapshot is damaged, resume from the newest intact one")

    report = commands.add_parser("report", help="summarise a sweep from its results folder")
    report.add_argument("results_dir", help="a launch's results folder (or the storage folder, to list launches)")
    report.add_argument("--json", action="store_true", help="machine-readable output")
    report.add_argument("--html", nargs="?", const="", default=None, metavar="OUT",
                        help="write the collapse atlas (HTML + PNGs) into OUT "
                             "(default: the results folder's atlas/); no MLflow needed")
    report.add_argument("--mlflow-url", default="", metavar="URL",
                        help="MLflow's UI address for links to runs, e.g. http://127.0.0.1:5000 "
                             "(default: $COLLAPSETUNE_MLFLOW_URL, or the tracking server)")

    dashboard = commands.add_parser("dashboard", help="open a sweep's Optuna study in optuna-dashboard")
    dashboard.add_argument("results_dir", help="a launch's results folder (it holds optuna.db)")
    dashboard.add_argument("--host", default="127.0.0.1")
    dashboard.add_argument("--port", type=int, default=8080)

    features = commands.add_parser("features", help="extract a MoP-CLIP features file with open_clip")
    features.add_argument("image_folder", help="one sub-folder of images per class")
    features.add_argument("out", help="the .npz features file to write")
    features.add_argument("--model", required=True, help="open_clip architecture, e.g. ViT-B-16")
    features.add_argument("--pretrained", required=True, help="local weights file (nothing is downloaded)")
    features.add_argument("--batch-size", type=int, default=64)
    features.add_argument("--device", default="cpu", help="cpu or cuda")

    args = parser.parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except SpecError as error:  # may name a folder or key of any name: shown, never sent to the terminal
        print(f"collapsetune: error: {_problems(error)}", file=sys.stderr)
        return 2
    except RestoreFailed as error:  # says itself what was left as it was and what was ended
        print(f"collapsetune: error: {terminal(str(error))}", file=sys.stderr)
        return 2
    except RayInternalsMoved as error:  # names each Ray name that is gone and the Ray to install
        print(f"collapsetune: error: {error}", file=sys.stderr)
        return 2


def _problems(error: SpecError) -> str:
    """The error as the terminal shows it: several problems one per line, each escaped (a
    line break inside one, from a folder's or a value's name, is shown, never sent)."""
    errors = error.errors
    if len(errors) == 1:
        return terminal(str(errors[0]))
    return f"{len(errors)} problems:\n" + "\n".join(f"  - {terminal(e)}" for e in errors)


def _load(args: argparse.Namespace):
    from collapsetune.spec import load_sweep

    overrides = list(args.set)
    if getattr(args, "address", None):
        overrides.append(f"address={args.address}")
    spec = load_sweep(Path(args.sweep), overrides)
    if spec.search.warm_start:  # reads the earlier sweeps' folders: here, not in load_sweep (resume loads too)
        from collapsetune.warm_start import check

        check(spec)
    for warning in spec.advice():
        print(f"collapsetune: warning: {warning}", file=sys.stderr)
    return spec


def _validate(args: argparse.Namespace) -> int:
    from collapsetune.spec import dump_spec  # not launch's: validate needs no Ray

    print(dump_spec(_load(args)), end="")
    return 0


def _run(args: argparse.Namespace) -> int:
    from collapsetune.launch import run_sweep
    from collapsetune.preflight import check

    spec = _load(args)
    print(_header(spec))
    check(spec)  # storage, MLflow store and Ray address answer, in seconds, before Ray starts
    return _finish(run_sweep(spec))


def _header(spec) -> str:
    """What is about to run, in a few lines (`validate` prints the whole resolved sweep, and
    every results folder keeps it as sweep.yaml)."""
    rules = "; ".join(
        f"{rule.text()} for {rule.patience} report(s) after {rule.grace}" for rule in spec.collapse) or "none"
    return "\n".join([
        f"collapsetune: {spec.name}: {spec.num_samples} trials of {spec.trainable}, {spec.max_iterations} reports "
        f"each; search {spec.search.algorithm}, scheduler {spec.scheduler.type}; objective {spec.objective.metric} "
        f"({spec.objective.mode})",
        f"  searching: {', '.join(spec.search_space) or 'nothing (config only)'}",
        f"  collapse rules: {rules}",
    ])


def _resume(args: argparse.Namespace) -> int:
    from collapsetune.launch import resume_sweep

    return _finish(resume_sweep(args.results_dir, older_snapshot=args.older_snapshot))


def _finish(outcome) -> int:
    """The summary, then the exit code: 0 every trial ended with a verdict (or the sweep's
    `stop_sweep_when:` breaker ended the sweep, which the summary says: not an error), 1 some trial
    errored (or the results folder filled up), 130 the driver was interrupted (the sweep can
    be resumed)."""
    _print_report(outcome.path, as_json=False)
    if outcome.full:  # 1, not 2: no input was wrong; trials failed on the full disk, and can go on
        print(f"collapsetune: error: {terminal(outcome.path)}: no space left on device in the results folder; "
              f"{outcome.errored + outcome.unfinished} of {outcome.trials} trial(s) stopped there; free space, "
              f"then `collapsetune resume {terminal(outcome.path)}` continues them from their last checkpoints",
              file=sys.stderr)
        return 1
    if outcome.interrupted:
        print(f"collapsetune: interrupted with {outcome.unfinished} trial(s) unfinished; finish the sweep with\n"
              f"  collapsetune resume {outcome.path}", file=sys.stderr)
        return 130
    if outcome.errored:
        print(f"collapsetune: {outcome.errored} of {outcome.trials} trial(s) failed; their errors are above "
              "and in the summary", file=sys.stderr)
        return 1
    return 0


def _report(args: argparse.Namespace) -> int:
    if args.html is not None:
        from collapsetune.atlas import write_atlas
        from collapsetune.results import ATLAS_DIR, read_results

        results = read_results(args.results_dir)
        out = args.html or (None if "://" in results.path else str(Path(results.path) / ATLAS_DIR))
        if out is None:
            print("collapsetune: error: results at a URI: give a local folder, --html OUT", file=sys.stderr)
            return 2
        links, ids = _run_links(args.results_dir, args.mlflow_url)
        page = write_atlas(results, out, run_links=links, run_ids=ids)
        print(f"collapsetune: wrote the collapse atlas {terminal(page)}", file=sys.stderr)
        _print_report(args.results_dir, as_json=args.json, atlas=str(page), ui_url=args.mlflow_url)
        return 0
    _print_report(args.results_dir, as_json=args.json, ui_url=args.mlflow_url)
    return 0


def _run_links(results_dir: str, ui_url: str) -> tuple[dict[str, str], dict[str, str]]:
    """Trial id -> its MLflow run's address (where MLflow's UI address is known) and run id."""
    from collapsetune.report import known_ui, load_summary, run_url

    summary = load_summary(results_dir)
    ids = {t.trial_id: t.mlflow_run_id for t in summary.trials if t.mlflow_run_id}
    base = known_ui(summary.tracking_uri or "", ui_url)
    links = {t: run_url(summary.experiment_id, r, base) for t, r in ids.items()} if base else {}
    return links, ids


def _dashboard(args: argparse.Namespace) -> int:
    from collapsetune.searchers import STUDY_FILE

    study = Path(args.results_dir) / STUDY_FILE
    if not study.is_file():
        print(f"collapsetune: error: {terminal(str(study))}: no Optuna study (only sweeps with "
              "search: {algorithm: optuna} and a local results folder keep one)", file=sys.stderr)
        return 2
    try:
        from optuna_dashboard import run_server
    except ImportError:
        print("collapsetune: error: optuna-dashboard is not installed: pip install -e \".[dashboard]\"", file=sys.stderr)
        return 2
    print(f"collapsetune: optuna-dashboard of {terminal(str(study))} at http://{args.host}:{args.port}/ (Ctrl-C ends it)")
    run_server(f"sqlite:///{study.absolute()}", host=args.host, port=args.port)
    return 0


def _print_report(results_dir: str, as_json: bool, atlas: str = "", ui_url: str = "") -> None:
    from collapsetune.report import format_launches, format_summary, launches_of, load_summary
    from collapsetune.results import ResultsError

    try:
        summary = load_summary(results_dir, ui_url=ui_url)
    except ResultsError:
        launches = launches_of(results_dir)  # the storage folder: list what is in it
        if not launches:
            raise
        print(json.dumps({"launches": launches}, indent=2) if as_json else format_launches(results_dir, launches))
        return
    summary.atlas = atlas or summary.atlas
    print(json.dumps(summary.to_dict(), indent=2, default=str) if as_json else format_summary(summary))


def _features(args: argparse.Namespace) -> int:
    from collapsetune.features_cli import extract_features

    try:
        path = extract_features(args.image_folder, args.out, args.model, args.pretrained,
                                batch_size=args.batch_size, device=args.device)
    except (ImportError, FileNotFoundError, ValueError) as error:
        print(f"collapsetune: error: {error}", file=sys.stderr)
        return 2
    print(f"collapsetune: wrote {path}")
    return 0


_COMMANDS = {"run": _run, "validate": _validate, "resume": _resume, "report": _report, "features": _features,
             "dashboard": _dashboard}

if __name__ == "__main__":
    sys.exit(main())
