"""Validation metrics under the node's disclosure control.

No metric is computed on fewer cases (patients) than the node's minimum; a confusion-matrix
cell or calibration bin below the threshold is suppressed (reported as `None` with a
`"<k"` marker), never rounded to zero. Counts are per patient, the privacy unit: a patient's
slices are averaged into one score first.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score


class TooFewCases(ValueError):
    pass


def per_patient(patients: list[str], y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label, mean score) per patient, in first-seen order."""
    order: dict[str, list[int]] = {}
    for i, pid in enumerate(patients):
        order.setdefault(pid, []).append(i)
    labels = np.array([y[idx[0]] for idx in order.values()])
    scores = np.array([float(np.mean(p[idx])) for idx in order.values()])
    return labels, scores


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC; NaN when only one class is present (it is undefined there)."""
    if len(set(y.tolist())) < 2:
        return math.nan
    return float(roc_auc_score(y, p))


def _cell(value: int, k: int) -> int | None:
    return value if value >= k else None


def validation_report(
    y: np.ndarray, p: np.ndarray, *, threshold: float, min_count: int, bins: int = 5
) -> dict[str, Any]:
    """AUC, sensitivity/specificity at `threshold` and calibration bins, for patient-level
    labels `y` and scores `p`; raises TooFewCases below `min_count` patients."""
    n = len(y)
    if n < min_count:
        raise TooFewCases(f"{n} cases, fewer than this node's minimum of {min_count}")
    predicted = p >= threshold
    positive = y == 1
    tp = int(np.sum(predicted & positive))
    fn = int(np.sum(~predicted & positive))
    tn = int(np.sum(~predicted & ~positive))
    fp = int(np.sum(predicted & ~positive))
    cells = {"tp": tp, "fn": fn, "tn": tn, "fp": fp}
    released = {name: _cell(v, min_count) for name, v in cells.items()}
    suppressed = sorted(name for name, v in released.items() if v is None)
    pos, neg = tp + fn, tn + fp
    report: dict[str, Any] = {
        "n": n,
        "auc": auc(y, p) if min(pos, neg) >= min_count else None,
        "threshold": threshold,
        "confusion": released,
        "suppressed": suppressed,
        # Rates only from cells both released: a rate with a hidden cell would reveal it.
        "sensitivity": tp / pos if pos and not {"tp", "fn"} & set(suppressed) else None,
        "specificity": tn / neg if neg and not {"tn", "fp"} & set(suppressed) else None,
        "calibration": [],
        "min_count": min_count,
    }
    edges = np.linspace(0.0, 1.0, bins + 1)
    for i in range(bins):
        upper = p <= edges[i + 1] if i == bins - 1 else p < edges[i + 1]
        inside = (p >= edges[i]) & upper
        count = int(np.sum(inside))
        ok = count >= min_count
        report["calibration"].append(
            {
                "low": float(edges[i]),
                "high": float(edges[i + 1]),
                "n": count if ok else None,
                "mean_predicted": float(np.mean(p[inside])) if ok else None,
                "observed": float(np.mean(y[inside])) if ok else None,
            }
        )
    return report
