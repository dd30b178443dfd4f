"""Output-set collapse metrics: distinct outputs and the commonest output's share."""

from __future__ import annotations

import pytest
import torch

from collapsetune.metrics import top_output_share, unique_outputs


def test_collapsed_and_diverse_texts():
    collapsed = ["a cat"] * 9 + ["a dog"]
    diverse = ["a cat", "a dog", "two birds", "the sea"]
    assert unique_outputs(collapsed) == pytest.approx(0.2) and unique_outputs(diverse) == 1.0
    assert top_output_share(collapsed) == pytest.approx(0.9) and top_output_share(diverse) == 0.25


def test_tensor_rows_and_lists_agree():
    rows = torch.tensor([[1, 2], [1, 2], [3, 4], [1, 2]])
    assert unique_outputs(rows) == unique_outputs(rows.tolist()) == 0.5
    assert top_output_share(rows) == top_output_share([torch.tensor(r) for r in rows.tolist()]) == 0.75
    labels = torch.tensor([3, 3, 3, 1])  # class predictions: each element an output
    assert unique_outputs(labels) == 0.5 and top_output_share(labels) == 0.75
    images = torch.zeros(4, 3, 2, 2)
    images[0] = 1.0
    assert unique_outputs(images) == 0.5 and top_output_share(images) == 0.75
    assert unique_outputs(["only"]) == 1.0 == top_output_share(["only"])


def test_output_metrics_reject_bad_input():
    for f in (unique_outputs, top_output_share):
        with pytest.raises(ValueError, match="outputs is empty"):
            f([])
        with pytest.raises(ValueError, match="outputs is empty"):
            f(torch.zeros(0, 3))
        with pytest.raises(ValueError, match="outputs holds NaN"):
            f(torch.tensor([[1.0, float("nan")], [1.0, float("nan")]]))
        with pytest.raises(ValueError, match=r"outputs\[1\] is NaN"):
            f([1.0, float("nan")])
        with pytest.raises(ValueError, match=r"outputs\[0\] must be hashable"):
            f([{"a": 1}])
        with pytest.raises(ValueError, match="got one str"):
            f("abc")
