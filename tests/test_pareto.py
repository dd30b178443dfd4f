import pytest

from collapsetune.pareto import front


def test_front_keeps_points_no_other_beats_on_every_objective():
    points = [(1.0, 5.0), (2.0, 2.0), (3.0, 4.0), (1.5, 6.0), (1.0, 5.0)]
    assert front(points, ["min", "max"]) == [0, 3, 4]  # (2,2) and (3,4) are beaten; ties both kept
    assert front(points, ["max", "max"]) == [2, 3]
    assert front([], ["min"]) == []


def test_front_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="min or max"):
        front([(1.0,)], ["up"])
