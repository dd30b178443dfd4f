"""End to end: the shipped mop_clip sweep, made small with --set, through the CLI and MLflow.

The seed's collapsing setting (tau_end 0.05, no regularizers) must be stopped and tagged
collapsed with its reason; the seed's fix (tau_end 0.3, diversity 0.1, entropy 0.01) must
stay healthy and carry its pictures.
"""

from __future__ import annotations

import pytest
from shipped_sweep import child_runs, run_shipped_sweep


@pytest.mark.slow
def test_mop_clip_sweep_tags_seed_collapse_and_keeps_its_fix(tmp_path):
    # Only the two points_to_evaluate run (num_samples=2), random search, no ASHA: the
    # verdicts come from the shipped collapse rules and the shipped points alone.
    out = run_shipped_sweep(
        "mop_clip", tmp_path, "num_samples=2", "search.algorithm=random", "scheduler={type: fifo}",
        "max_iterations=10", timeout=300,
    )
    client, runs = child_runs(tmp_path, "mop-clip-collapse")
    assert len(runs) == 2
    by_tau = {r.data.params["tau_end"]: r for r in runs}

    bad = by_tau["0.05"]
    assert bad.data.params["diversity_loss_weight"] == "0.0"
    assert bad.data.tags["collapse.status"] == "collapsed"
    # It sits flat at ~0.965, so the waiting rule (above 0.95, fallen < 0.005 over 2 reports
    # after grace 2) stops it at report 5, where the 0.9 rule's grace 4 + patience 4 waits to 8.
    assert bad.data.tags["collapse.reason"].startswith("collapse/subprompt_cos_max=")
    assert "> 0.95, improving" in bad.data.tags["collapse.reason"]
    assert "over 2 reports (< 0.005) for 1 report" in bad.data.tags["collapse.reason"]
    stopped_at = int(bad.data.tags["collapse.iteration"])
    assert stopped_at == 5
    assert max(m.step for m in client.get_metric_history(bad.info.run_id, "val/loss")) == stopped_at
    assert bad.data.metrics["objective"] == -1.0e9  # maximising val/accuracy

    good = by_tau["0.3"]
    assert good.data.params["diversity_loss_weight"] == "0.1"
    assert good.data.params["entropy_loss_weight"] == "0.01"
    assert good.data.tags["collapse.status"] == "healthy"
    assert good.data.metrics["collapse/subprompt_cos_max"] < 0.9
    assert max(m.step for m in client.get_metric_history(good.info.run_id, "val/loss")) == 10
    for run in (good, bad):
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"subprompt_similarity.png", "subprompt_images.png"} <= names, names
    assert "best healthy trial" in out.stdout
