"""Federated statistics (Tier 3): local + combine pairs shipped with the package.

Only the analyses listed in :data:`ANALYSES` exist; a node runs those its policy allows
(``allowed_algorithms``). See :mod:`oncofed.analysis.base` for the shape of one.
"""

from __future__ import annotations

from oncofed.analysis import cox, crosstab, glm, km, summary
from oncofed.analysis.base import Registered

ANALYSES: dict[str, Registered] = {
    a.name: a
    for a in (km.ANALYSIS, glm.ANALYSIS, cox.ANALYSIS, crosstab.ANALYSIS, summary.ANALYSIS)
}
