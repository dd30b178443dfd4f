"""Names that one part of collapsetune writes and another reads: the files of a results
folder, the keys a trial adds to its reports, and the MLflow tags that tie runs to a sweep.

They live here, in a module that imports nothing, so that the readers (`results`,
`report`: quick, and never importing Ray) and the writers (`launch`, `trainable`,
`tracking`: on Ray) use one definition. The verdict keys and words (`collapse.status`,
`healthy`, ...) are in `collapsetune.collapse`, which does not import Ray either.
"""

from __future__ import annotations

SWEEP_FILE = "sweep.yaml"  # the resolved sweep, written into every results folder
LAUNCH_FILE = "collapsetune.json"  # where the sweep came from, for `resume`
# In each trial's folder: every report the driver received, one JSON object a line, in order
# (Ray's result.json loses reports when PBT pauses and resumes a trial; collapsetune.records).
REPORTS_FILE = "collapsetune_reports.jsonl"

DONOR_KEY = "pbt.donor"  # on the first report after a PBT exploit: the trial whose checkpoint it took
DONOR_REPORT_KEY = "pbt/donor_report"  # ... and that trial's report the checkpoint was made at
CONFIG_PREFIX = "config/"  # a mutable knob's value on each report, e.g. config/lr

PATH_TAG = "collapsetune.experiment_path"  # ties a parent run to its results folder
TRIAL_TAG = "ray.trial_id"  # ties a child run to its trial

__all__ = ["CONFIG_PREFIX", "DONOR_KEY", "DONOR_REPORT_KEY", "LAUNCH_FILE", "PATH_TAG", "REPORTS_FILE", "SWEEP_FILE",
           "TRIAL_TAG"]
