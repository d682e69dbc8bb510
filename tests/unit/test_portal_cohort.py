"""The cohort explorer's query model: groups of chips <-> EUCAIM's AST, and form input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oncofed.hub.portal import cohort
from oncofed.hub.portal.charts import Bar, bar_chart
from oncofed.query import parse_query

SEX, AGE, DIAG = "SNOMEDCT263495000", "SNOMEDCT423493009", "SNOMEDCT439401001"
FEMALE, MALE = "SNOMEDCT248152002", "SNOMEDCT248153007"

criteria = st.one_of(
    st.builds(
        lambda v: {"key": SEX, "type": "EQUALS", "value": v}, st.sampled_from([FEMALE, MALE])
    ),
    st.builds(
        lambda lo, hi: {"key": AGE, "type": "BETWEEN", "value": {"min": lo, "max": lo + hi}},
        st.integers(0, 90),
        st.integers(0, 30),
    ),
    st.builds(lambda n: {"key": AGE, "type": "GREATER_THAN", "value": n}, st.integers(0, 110)),
)
groups_strategy = st.lists(st.lists(criteria, min_size=1, max_size=4), max_size=4)


@given(groups_strategy)
def test_groups_survive_the_round_trip_through_the_ast(groups: list[list[dict[str, Any]]]) -> None:
    ast = cohort.to_ast(groups)
    parse_query(ast)  # every shape the page builds is a valid query
    assert cohort.from_ast(ast) == groups
    _, parsed = cohort.parse_state(cohort.encode(groups))
    assert parsed == groups


def test_a_query_of_another_shape_runs_but_is_not_chips() -> None:
    nested = {
        "operand": "AND",
        "children": [
            {
                "operand": "OR",
                "children": [
                    {"key": SEX, "type": "EQUALS", "value": FEMALE},
                    {
                        "operand": "AND",
                        "children": [{"key": AGE, "type": "LOWER_THAN", "value": 50}],
                    },
                ],
            }
        ],
    }
    assert cohort.from_ast(nested) is None
    assert cohort.describe(None, nested).startswith("custom query")


def test_form_input_becomes_a_checked_criterion() -> None:
    assert cohort.criterion_from_form(AGE, "BETWEEN", [], "40", "") == {
        "key": AGE,
        "type": "BETWEEN",
        "value": {"min": 40},
    }
    several = cohort.criterion_from_form(SEX, "EQUALS", [FEMALE, MALE], "", "")
    assert several == {"key": SEX, "type": "IN", "value": [FEMALE, MALE]}
    assert cohort.describe_criterion(several) == "Sex is any of female, male"
    assert (
        cohort.describe(
            [[{"key": AGE, "type": "BETWEEN", "value": {"min": 30.0, "max": 90.0}}]], {}
        )
        == "Age at diagnosis between 30 and 90 years"
    )


@pytest.mark.parametrize(
    ("key", "type_", "values", "lo", "hi", "message"),
    [
        ("nope", "EQUALS", ["x"], "", "", "choose a criterion first"),
        (SEX, "BETWEEN", [FEMALE], "", "", "Sex: choose one of"),
        (SEX, "EQUALS", [], "", "", "Sex: choose or type a value"),
        (SEX, "EQUALS", ["SNOMEDCT0"], "", "", "Sex:"),
        (AGE, "BETWEEN", [], "", "", "give a lower bound, an upper bound or both"),
        (AGE, "GREATER_THAN", [], "old", "", "the value must be a number"),
    ],
)
def test_bad_form_input_names_the_field(
    key: str, type_: str, values: list[str], lo: str, hi: str, message: str
) -> None:
    with pytest.raises(cohort.CohortError, match=message):
        cohort.criterion_from_form(key, type_, values, lo, hi)


def test_charts_never_show_a_withheld_number() -> None:
    svg = str(bar_chart("Patients", [Bar("node-1", 120), Bar("node-2", None, 10)]))
    assert "node-2: &lt; 10" in svg and 'fill="url(#withheld)"' in svg
    assert svg.count("<rect") == 3  # two bars and the hatch pattern's stripe
    assert "<script" not in svg and "http" not in svg.replace("http://www.w3.org", "")
    assert "No data yet" in str(bar_chart("Patients", []))
    assert "&lt;b&gt;" in str(bar_chart("Patients", [Bar("<b>", 1)]))  # labels are escaped
