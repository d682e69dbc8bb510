"""Terminology tables the clinical importers share, shipped as data (``ingest/data/*.csv``).

Read once per process. SNOMED CT cancers map to the CDM's diagnosis (site, ICD-10, ICD-O-3);
antineoplastic and endocrine agents (ATC L01/L02) by RxNorm ingredient; cancer procedures by
SNOMED CT concept. Each file says in its header comment where its rows come from; adding a
row is how a site extends what its exports are understood to say.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from oncofed.node.ingest.codes import SITE_SNOMED

ATC_SYSTEM = "http://www.whocc.no/atc"


@dataclass(frozen=True)
class Cancer:
    snomed: str
    label: str
    primary: bool
    site: str | None  # a key of SITE_SNOMED, or None
    icd10: str | None
    topography: str | None
    morphology: str | None

    @property
    def site_snomed(self) -> str:
        """The EUCAIM diagnosis code the CDM stores: the site's, else the concept itself."""
        return SITE_SNOMED[self.site] if self.site else self.snomed


@dataclass(frozen=True)
class Agent:
    rxcui: str
    ingredient: str
    atc: str

    @property
    def kind(self) -> str:
        """The CDM treatment kind of the agent's ATC class."""
        if self.atc.startswith("L02"):
            return "hormone"
        if self.atc.startswith("L01FF"):
            return "immunotherapy"
        if self.atc.startswith(("L01E", "L01FA", "L01FD", "L01FE", "L01FG")):
            return "targeted"
        return "chemotherapy"


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files("oncofed.node.ingest").joinpath("data", name).read_text("utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return list(csv.DictReader(lines))


@cache
def cancers() -> dict[str, Cancer]:
    """SNOMED CT concept id → the cancer it is."""
    return {
        r["snomed"]: Cancer(
            r["snomed"],
            r["label"],
            r["role"] == "primary",
            r["site"] or None,
            r["icd10"] or None,
            r["topography"] or None,
            r["morphology"] or None,
        )
        for r in _rows("snomed_cancer.csv")
    }


@cache
def agents() -> dict[str, Agent]:
    """RxNorm ingredient concept id → the antineoplastic or endocrine agent."""
    return {
        r["rxcui"]: Agent(r["rxcui"], r["ingredient"], r["atc"])
        for r in _rows("antineoplastic.csv")
    }


@cache
def _ingredient_pattern() -> re.Pattern[str]:
    names = sorted((a.ingredient for a in agents().values()), key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b", re.IGNORECASE)


def agent_for(code: str | None, system: str | None, text: str | None) -> Agent | None:
    """The cancer agent a medication concept names, or None (not a cancer treatment).

    An ATC code counts when it is L01 or L02; an RxNorm ingredient by the table; a product
    concept (a strength and form) by the ingredient its name carries.
    """
    if code and system and "atc" in system.lower():
        if code.upper().startswith(("L01", "L02")):
            return Agent("", text or code, code.upper())
        return None
    if code and code in agents():
        return agents()[code]
    if text:
        m = _ingredient_pattern().search(text)
        if m:
            name = m.group(1).lower()
            return next(a for a in agents().values() if a.ingredient == name)
    return None


@cache
def cancer_procedures() -> dict[str, tuple[str, str]]:
    """SNOMED CT procedure concept id → (label, CDM treatment kind)."""
    return {r["snomed"]: (r["label"], r["kind"]) for r in _rows("cancer_procedures.csv")}
