"""Which grace, patience and waiting a model's shipped rules should have: a scan on the
replayed benchmark (issue 24, item 4: defaults from evidence).

Each variant is the shipped sweep with every collapse rule's `grace` and `patience` set (and
optionally `unless_improving`), and optionally CollapseASHA's `grace_period` and
`reduction_factor` (`--asha GRACE/FACTOR`: the rules and the rungs are chosen together, since a
rung before the rules' first verdict ranks trials nobody has judged yet), replayed through collapse_bench.py's real searcher,
CollapseASHA, stopper and rules on the model's curve table, on the same seeds as FIFO and the
oracle. What decides a default: recoveries killed (share of seeds in which a trial whose full
curve does not end collapsed was stopped as collapsed; goal <= 5%), picked trial collapsed
(goal: never), and the CPU that buys (x FIFO, x oracle).

The scan's grace and patience are those of the table's rules (the thresholds the table was
judged by); a rule the sweep file has beyond them (mop_clip's waiting rule) keeps its own.
`--extra-rule` puts a rule of its own (as a sweep file writes it, with its own grace and
patience) in that place instead, a variant per `--extra-rule`.

Run:  python benchmarks/rule_scan.py mop_clip --grace 4 6 8 --patience 1 2 3 --seeds 20
      python benchmarks/rule_scan.py mop_clip --grace 4 --patience 3 --waiting-only --asha 6/3 6/6 2/3 --seeds 8
      python benchmarks/rule_scan.py mop_clip --grace 4 --patience 5 --asha 2/2 3/3 --cut-ties --seeds 20
      python benchmarks/rule_scan.py mop_clip --grace 4 --patience 4 --seeds 20 \
          --extra-rule "{metric: collapse/subprompt_cos_max, above: 0.95,
                         unless_improving: {by: 0.005, over: 2}, grace: 2, patience: 1}"
      (--jobs 2: the replays in two processes, the same figures)
Writes benchmarks/results/rule_scan_<model>.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import collapse_bench as cb  # noqa: E402  (benchmarks/ is not a package)


def variants(table: cb.Table, graces: list[int], patiences: list[int], waiting: bool | None,
             schedules: list[tuple[int, float]] | None = None, cut_ties: bool = False,
             extra_rules: list[dict | None] | None = None) -> list[cb.Method]:
    """One method per rules x schedule x extra rule; `waiting`: also (True), only (None) or
    never (False) with unless_improving; `schedules`: CollapseASHA (grace_period,
    reduction_factor) pairs, none for the sweep's own; `cut_ties`: every schedule with
    CollapseASHA's cut_ties on; `extra_rules`: rules as a sweep file writes them, each after
    the table's rules in a variant of its own (None among them, or no list: the sweep file's
    own rules)."""
    out = []
    waits = {False: [False], True: [False, True], None: [True]}[waiting]
    for grace, patience, wait, schedule, extra in itertools.product(graces, patiences, waits, schedules or [None],
                                                                   extra_rules or [None]):
        # The table's rules (whose grace and patience are set below), then the extra rule with
        # its own counts, in place of any the sweep file has beyond the table's.
        sets = [] if extra is None else [f"collapse={json.dumps([r.to_yaml() for r in table.rules] + [extra])}"]
        for i, rule in enumerate(table.rules):
            sets += [f"collapse.{i}.grace={grace}", f"collapse.{i}.patience={patience}"]
            if wait:
                by = cb.IMPROVING_BY[rule.conditions[0].metric]
                sets.append(f"collapse.{i}.unless_improving={{by: {by}, over: 3}}")
        name = f"grace {grace}, patience {patience}" + (", unless improving" if wait else "")
        if schedule is not None:
            sets.append(f"scheduler={{type: asha, grace_period: {schedule[0]}, reduction_factor: {schedule[1]:g}}}")
            name += f"; asha {schedule[0]}/{schedule[1]:g}"
        if cut_ties:
            sets.append("scheduler.cut_ties=true")
            name += ", ties cut"
        if extra is not None:
            name += f"; + {_rule_name(extra)}"
        out.append(cb.Method(name, tuple(sets)))
    return out


def _rule_name(raw: dict) -> str:
    from collapsetune.collapse import Rule

    rule = Rule.from_yaml(raw)
    return f"{rule.text()}, grace {rule.grace}, patience {rule.patience}"


def _extra_rule(text: str) -> dict:
    """A rule as a sweep file writes it, checked as the sweep would check it."""
    import yaml

    from collapsetune.collapse import Rule
    from collapsetune.errors import SpecError

    try:
        raw = yaml.safe_load(text)
        Rule.from_yaml(raw)
    except (yaml.YAMLError, SpecError) as exc:
        lines = [line.strip(" -") for line in str(exc).splitlines()
                 if line.strip(" -") and not line.rstrip().endswith("problems:")] or [type(exc).__name__]
        problem = lines[0] if isinstance(exc, yaml.YAMLError) else "; ".join(lines)  # one line either way
        raise argparse.ArgumentTypeError(f"expected a rule as a sweep file writes it, {{metric: ..., above: ..., "
                                         f"grace: ..., patience: ...}}, got {text!r}: {problem}") from None
    return raw


def _schedule(text: str) -> tuple[int, float]:
    try:
        grace, factor = text.split("/")
        return int(grace), float(factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected GRACE/FACTOR such as 6/3, got {text!r}") from None


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", choices=sorted(cb.TABLES))
    parser.add_argument("--grace", nargs="+", type=int, default=[4, 6, 8])
    parser.add_argument("--patience", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--waiting", action="store_true", help="also each with unless_improving")
    parser.add_argument("--waiting-only", action="store_true", help="only with unless_improving")
    parser.add_argument("--asha", nargs="+", type=_schedule, default=None, metavar="GRACE/FACTOR",
                        help="CollapseASHA grace_period/reduction_factor pairs (default: the sweep's own)")
    parser.add_argument("--cut-ties", action="store_true", help="CollapseASHA with cut_ties: true in every variant")
    parser.add_argument("--extra-rule", action="append", type=_extra_rule, default=None, metavar="YAML",
                        help="a rule added after the shipped ones, a variant per --extra-rule (repeatable)")
    parser.add_argument("--trials", type=int, default=256)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--jobs", type=cb.jobs_count, default=1,
                        help="replay in this many processes (same figures; on a shared 2-core machine, 1 or 2)")
    args = parser.parse_args(argv)
    cb._quiet()
    table = cb.Table(args.model)
    methods = variants(table, args.grace, args.patience, None if args.waiting_only else args.waiting, args.asha,
                       args.cut_ties, args.extra_rule)
    for m in methods:
        cb.METHODS[m.name] = m
    out = args.out or ROOT / "benchmarks" / "results" / f"rule_scan_{args.model}.json"
    # asha+function_stopper: what a Ray Tune user writes instead, the CPU to beat (issue 24)
    names = ["fifo", "oracle", "collapsetune", "asha+function_stopper"] + [m.name for m in methods]
    rows, _ = cb.cell(table, names, args.trials, args.workers, list(range(args.seeds)),
                      cache=out.with_name(out.stem + "_seeds.jsonl"), jobs=args.jobs)
    shipped = {f"grace {r.grace}, patience {r.patience}" for r in table.rules}
    doc = {"command": "python benchmarks/rule_scan.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "model": args.model, "shipped": sorted(shipped), "table_rows": len(table.rows), "rows": rows}
    out.write_text(json.dumps(doc, indent=1))
    print(cb.markdown(rows))
    return rows


if __name__ == "__main__":
    main()
