from __future__ import annotations

import json

import torch

from benchmarks import metric_cost
from collapsetune import metrics


def test_every_library_metric_is_timed():
    labels = metric_cost.calls(metric_cost.inputs(torch.device("cpu"), n_texts=4, n_tokens=6, n_emb=8, dim=5))
    timed = {label.split(" ")[0] for label in labels}
    assert timed == set(metrics.__all__) - {"subprompt_cosines"}  # subprompt_cos_max/mean time it


def test_metric_cost_writes_one_row_per_call(tmp_path, monkeypatch):
    monkeypatch.setattr(metric_cost, "ROUND_SECONDS", 0.001)
    out = tmp_path / "cost.json"
    metric_cost.main(["--rounds", "1", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["torch_threads"] == 1
    assert len(result["rows"]) == len(metric_cost.calls(metric_cost.inputs(torch.device("cpu"))))
    assert all(r["ms_per_call"] > 0 for r in result["rows"])
