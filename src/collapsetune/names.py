"""Names that one part of collapsetune writes and another reads: the files of a results
folder and a trial's folder, the keys a trial adds to its reports, and the MLflow tags
collapsetune writes and reads.

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
CHECKPOINT_FILE = "collapsetune_state.pt"  # torch.save's zip, or a plain pickle of data only (trainable)
ARTIFACTS_DIR = "artifacts"  # in each trial's folder: files a wrapper's write_artifacts() made
SAMPLES_FILE = "samples.md"  # one MLflow artifact per trial: every report's samples, newest last
ATLAS_DIR = "atlas"  # `report --html` writes the atlas here by default; `report` looks here
ATLAS_PAGE = "atlas.html"  # inside ATLAS_DIR
# In a results folder whose `stop_sweep_when:` breaker tripped: why, and which trials it stopped
# (JSON: {"reason": ..., "trials": [...]}; collapsetune.records writes it, collapsetune.results reads it).
SWEEP_STOP_FILE = "sweep_stopped.json"

# What a trial reports (its penalised objective) and Tune optimises; further objectives are
# `objective/2`, ... (collapsetune.trainable.objective_key).
OBJECTIVE_KEY = "objective"
CPU_KEY = "time/cpu_s"  # CPU seconds the trial's process used since its previous report

DONOR_KEY = "pbt.donor"  # on the first report after a PBT exploit: the trial whose checkpoint it took
DONOR_REPORT_KEY = "pbt/donor_report"  # ... and that trial's report the checkpoint was made at
# On the report that tripped the `stop_sweep_when:` breaker: why (the stopper adds it).
SWEEP_STOP_KEY = "sweep.stopped"
CONFIG_PREFIX = "config/"  # a mutable knob's value on each report, e.g. config/lr
# With `collapse_forecast:`, on each report the forecast has a model for: P(the trial ends
# collapsed). An MLflow metric under this name, and a tag of the same name with the verdict
# it predicts (collapsed: P >= 0.5 or the forecast stopped the trial; else healthy).
FORECAST_KEY = "collapse.forecast"
FORECAST_REASON = "forecast:"  # how the `collapse.reason` of a trial the forecast stopped begins

PATH_TAG = "collapsetune.experiment_path"  # ties a parent run to its results folder
TRIAL_TAG = "ray.trial_id"  # ties a child run to its trial
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: a child run's parent (the sweep's run)
LAUNCH_TAG = "collapsetune.launch_id"  # ties a parent run to its launch even when the folder moved
ORPHAN_TAG = "collapsetune.orphan"  # why a run was moved to the trash on resume
STEP_TAG = "collapsetune.step"  # last report logged to a run
OFFSET_TAG = "collapsetune.step_offset"  # run step - the trial's report number, after PBT exploits
EXPLOITS_TAG = "collapsetune.pbt.exploits"  # one line per checkpoint PBT copied into the trial
ERROR_TAG = "collapsetune.error"
RUN_NAME_TAG = "mlflow.runName"  # the name MLflow's runs list always shows: it carries the verdict
NOTE_TAG = "mlflow.note.content"  # a run's description in MLflow's UI (Markdown)
RENAMED_PREFIX = "collapsetune.renamed."  # + MLflow's name -> the name the wrapper reported
DROPPED_TAG = "collapsetune.dropped"  # names MLflow refused in every form: `name: why`, one a line
FAILED_WRITES_TAG = "collapsetune.failed_writes"
STOPPED_TAG = "collapsetune.stopped"  # why a sweep's runs were left KILLED (a full disk, a failed restore)
SWEEP_STOP_TAG = "collapsetune.sweep_stopped"  # parent and trials' runs: the breaker stopped the sweep, why
COUNT_PREFIX = "collapsetune.trials."  # + outcome -> how many trials ended so, on the parent run
CHANGED_TAG = "collapsetune.param_changed."  # + key: a param whose value changed since first logged
# MLflow's own record of what an experiment is for. MLflow 3.17's open-source UI does not
# read it (it opens on the view in the URL's `workflowType`, else the browser's last
# choice, else GenAI), but it is what MLflow's data model and APIs use to tell a
# model-training experiment from a GenAI one.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
CUSTOM_MODEL_KIND = "custom_model_development"

__all__ = ["ARTIFACTS_DIR", "ATLAS_DIR", "ATLAS_PAGE", "CHANGED_TAG", "CHECKPOINT_FILE", "CONFIG_PREFIX",
           "CPU_KEY", "CUSTOM_MODEL_KIND", "DONOR_KEY", "DONOR_REPORT_KEY", "DROPPED_TAG", "ERROR_TAG",
           "EXPERIMENT_KIND_TAG", "EXPLOITS_TAG", "FAILED_WRITES_TAG", "FORECAST_KEY", "FORECAST_REASON",
           "LAUNCH_FILE", "LAUNCH_TAG", "NOTE_TAG",
           "OBJECTIVE_KEY", "OFFSET_TAG", "ORPHAN_TAG", "PARENT_TAG", "PATH_TAG", "RENAMED_PREFIX",
           "REPORTS_FILE", "SAMPLES_FILE", "STEP_TAG", "SWEEP_FILE", "SWEEP_STOP_FILE", "SWEEP_STOP_KEY",
           "SWEEP_STOP_TAG", "TRIAL_TAG"]
