"""Model formulas parsed against the variable catalogue, and the design matrix they make.

A formula is ``outcome ~ term + term``: every name must be a catalogue variable, ``+`` is
the only operator (no transformations, interactions or expressions: nothing a node could
be tricked into evaluating). Categorical terms become treatment-coded indicator columns
against the catalogue's first level, so every node builds the same columns in the same
order whatever levels its own rows happen to hold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from oncofed.analysis.variables import Frame, Variable, VariableError, variable

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Formula:
    outcome: str
    terms: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.outcome} ~ {' + '.join(self.terms) or '1'}"


def parse_formula(text: str, analysis: str) -> Formula:
    """``"vital_status ~ age + stage"`` checked against the catalogue for ``analysis``."""
    left, sep, right = text.partition("~")
    if not sep:
        raise VariableError(f"formula {text!r}: write OUTCOME ~ TERM + TERM (e.g. y ~ age)")
    outcome = left.strip()
    terms = tuple(t.strip() for t in right.split("+")) if right.strip() not in ("", "1") else ()
    for name in (outcome, *terms):
        if not _NAME.match(name):
            raise VariableError(
                f"formula {text!r}: {name!r} is not a variable name; only catalogue variables "
                "joined by + are allowed (no expressions)"
            )
    if len(set(terms)) != len(terms) or outcome in terms:
        raise VariableError(f"formula {text!r}: a variable appears twice")
    out = variable(outcome, analysis)
    if analysis == "cox" and out.kind != "survival":
        raise VariableError(f"formula {text!r}: a Cox model's outcome is a survival variable")
    if analysis == "glm" and out.kind not in ("numeric", "binary"):
        raise VariableError(f"formula {text!r}: a GLM's outcome is numeric or binary")
    for t in terms:
        if variable(t, analysis).kind == "survival":
            raise VariableError(f"formula {text!r}: {t!r} is an outcome, not a covariate")
    return Formula(outcome, terms)


def column_names(formula: Formula, intercept: bool) -> list[str]:
    names = ["Intercept"] if intercept else []
    for t in formula.terms:
        v = variable(t)
        if v.kind == "categorical":
            names.extend(f"{t}[T.{level}]" for level in v.levels[1:])
        else:
            names.append(t)
    return names


@dataclass(frozen=True)
class Design:
    """The complete-case rows of a frame as a model matrix.

    ``level_counts``: rows per level of each categorical term (for the node's small-cell
    rule: an indicator column backed by a handful of patients identifies them).
    """

    x: npt.NDArray[np.float64]
    names: list[str]
    rows: npt.NDArray[np.int64]  # frame rows used
    level_counts: dict[str, list[int]]


def design(frame: Frame, formula: Formula, outcome_columns: list[str], intercept: bool) -> Design:
    """X for the terms, keeping rows where every term and outcome column is known."""
    keep = np.ones(frame.rows, dtype=np.bool_)
    for col in outcome_columns:
        keep &= ~np.isnan(frame.columns[col])
    variables: list[Variable] = [variable(t) for t in formula.terms]
    for v in variables:
        column = frame.columns[v.name]
        keep &= (column >= 0) if v.kind == "categorical" else ~np.isnan(column)
    rows = np.flatnonzero(keep)
    parts: list[npt.NDArray[np.float64]] = []
    if intercept:
        parts.append(np.ones((len(rows), 1)))
    level_counts: dict[str, list[int]] = {}
    for v in variables:
        taken = frame.columns[v.name].take(rows)
        if v.kind == "categorical":
            codes = taken.astype(np.int64)
            level_counts[v.name] = np.bincount(codes, minlength=len(v.levels)).tolist()
            parts.append((codes[:, None] == np.arange(1, len(v.levels))[None, :]).astype(float))
        else:
            values = taken.astype(np.float64)
            if v.bounds is not None:
                values = np.clip(values, *v.bounds)
            if v.kind == "binary":
                level_counts[v.name] = [int((values == 0).sum()), int((values == 1).sum())]
            parts.append(values[:, None])
    x = np.hstack(parts) if parts else np.zeros((len(rows), 0))
    return Design(x, column_names(formula, intercept), rows, level_counts)
