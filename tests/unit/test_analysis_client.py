"""What a researcher reads: the statsmodels-like text, the CSV rows and the KM SVG, from
pooled results computed in process."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from oncofed.client.analyse import AnalysisResult
from tests.unit.test_analysis_math import cohort, federated, split

PARTS = split(cohort(600, seed=31), [300])


def result(algorithm: str, spec: dict[str, object]) -> AnalysisResult:
    run = {"id": "x", "result": federated(algorithm, spec, PARTS), "rounds": [], "sites": ["a"]}
    return AnalysisResult(run)


def test_glm_and_cox_print_like_statsmodels() -> None:
    glm = result("glm", {"formula": "vital_status ~ age + stage"}).summary()
    assert "Generalized Linear Model Regression Results" in glm
    assert "P>|z|" in glm and "stage[T.IV]" in glm and "No. Iterations" in glm
    cox = result("cox", {"formula": "survival ~ age + sex"}).summary()
    assert "exp(coef)" in cox and "sex[T.male]" in cox


@pytest.mark.parametrize(
    ("algorithm", "spec", "header"),
    [
        ("km", {"bin_days": 30, "group_by": "sex"}, "group,start,end,at_risk,events"),
        ("crosstab", {"row": "stage", "column": "sex"}, "stage,sex,count,withheld_at_nodes"),
        ("summary", {"variable": "age"}, "from,to,count,withheld_at_nodes"),
        ("glm", {"formula": "vital_status ~ age"}, "term,coef,std_err,z,p,ci_low,ci_high"),
    ],
)
def test_csv_rows(algorithm: str, spec: dict[str, object], header: str) -> None:
    text = result(algorithm, spec).to_csv()
    assert text.splitlines()[0].startswith(header) and len(text.splitlines()) > 2


def test_km_svg_is_standalone_and_well_formed() -> None:
    km = result("km", {"bin_days": 30, "group_by": "stage"})
    svg = km.plot()
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    paths = root.findall("{http://www.w3.org/2000/svg}path")
    assert len(paths) == len(km.result["groups"])
    assert "<script" not in svg and "href" not in svg  # nothing fetched, nothing run
    with pytest.raises(ValueError, match="only Kaplan-Meier"):
        result("crosstab", {"row": "stage", "column": "sex"}).plot()
