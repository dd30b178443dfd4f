"""Run creation served between the writes of a round (new) or only after the round (old),
side by side in one process, with plain Ray Tune as the anchor (issue 13).

The old writer's `_run` / `_write_reports` are loaded from git (the commit before the change)
and put on `tracking._Writer` for the "old" sweep; everything else is the current code.
One cell of benchmarks/throughput.py: 128 trials x 20 reports/s x 62 reports.

Run:  python benchmarks/run_creation_ab.py     # writes benchmarks/results/throughput_run_creation_ab.json; 10 min
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput as tp  # noqa: E402 - benchmarks/ is not a package

OLD = "e6f01bab195beaca2f862a98475511fe6f8fc727"  # the last commit whose writer served calls only between rounds
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "throughput_run_creation_ab.json"


def main() -> None:
    import ray
    from collapsetune import tracking

    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "tracking_old.py"
        source.write_text(subprocess.run(["git", "show", f"{OLD}:src/collapsetune/tracking.py"], cwd=ROOT,
                                         check=True, capture_output=True, text=True).stdout)
        # The old file imports mlflow_names, which now lives in the tracking package.
        sys.modules.setdefault("collapsetune.mlflow_names", importlib.import_module("collapsetune.tracking._names"))
        spec = importlib.util.spec_from_file_location("tracking_old", source)
        old = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(old)
        new = (tracking._Writer._run, tracking._Writer._write_reports)
        ray.init(address="local", num_cpus=tp.CPUS, include_dashboard=False, log_to_driver=False)
        trials, rate = 128, 20.0
        reports = tp.reports_for(trials, rate)
        rows = []
        for name in ("plain", "old", "new"):
            print(time.strftime("%H:%M:%S"), name, file=sys.stderr, flush=True)
            folder = Path(scratch) / name
            if name == "plain":
                row = tp.plain_ray(trials, reports, rate, 0.01, folder)
            else:
                tracking._Writer._run, tracking._Writer._write_reports = (
                    (old._Writer._run, old._Writer._write_reports) if name == "old" else new)
                row = tp.collapsetune_sweep(trials, reports, rate, 0.01, folder, mlflow=True)
            rows.append({"runner": name, **row})
        tracking._Writer._run, tracking._Writer._write_reports = new
        ray.shutdown()
    for row in rows:
        row["vs_plain"] = row["results_per_s"] / rows[0]["results_per_s"]
        print(f"{row['runner']}: wall {row['wall_s']:.1f} s, {row['results_per_s']:.1f} results/s, "
              f"x plain {row['vs_plain']:.2f}")
    OUT.write_text(json.dumps({"command": "python benchmarks/run_creation_ab.py", "old_commit": OLD,
                               "date": time.strftime("%Y-%m-%d %H:%M"), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
