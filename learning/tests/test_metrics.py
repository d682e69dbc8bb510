"""Validation metrics under disclosure control."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oncofed_learning.metrics import TooFewCases, validation_report


def test_refuses_below_the_minimum() -> None:
    with pytest.raises(TooFewCases, match="fewer than this node's minimum of 10"):
        validation_report(
            np.array([0, 1] * 4), np.array([0.2, 0.8] * 4), threshold=0.5, min_count=10
        )


def test_small_cells_are_suppressed_and_their_rates_withheld() -> None:
    y = np.array([1] * 30 + [0] * 30)
    p = np.array([0.9] * 27 + [0.1] * 3 + [0.1] * 30)  # 3 false negatives
    report = validation_report(y, p, threshold=0.5, min_count=5)
    assert report["confusion"] == {"tp": 27, "fn": None, "tn": 30, "fp": None}
    assert report["suppressed"] == ["fn", "fp"]
    assert report["sensitivity"] is None and report["specificity"] is None
    assert report["auc"] == pytest.approx(0.95)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1), st.floats(0, 1)), min_size=10, max_size=200),
    st.integers(1, 20),
)
def test_nothing_released_below_the_threshold(cases: list[tuple[int, float]], k: int) -> None:
    y = np.array([c[0] for c in cases])
    p = np.array([c[1] for c in cases])
    if len(y) < k:
        with pytest.raises(TooFewCases):
            validation_report(y, p, threshold=0.5, min_count=k)
        return
    report = validation_report(y, p, threshold=0.5, min_count=k)
    released = [v for v in report["confusion"].values() if v is not None]
    assert all(v >= k for v in released)
    assert all(b["n"] is None or b["n"] >= k for b in report["calibration"])
    released_bins = [b["n"] for b in report["calibration"] if b["n"] is not None]
    assert sum(released_bins) <= len(y)
