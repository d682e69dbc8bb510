"""A catalogue record: one dataset as the hub publishes it (JSON), and the pieces it is made of.

The same record is what the JSON API returns, what :mod:`.dcat` turns into EUCAIM DCAT-AP,
and what :mod:`.harvest` reads back from another FAIR Data Point, so that a harvest of our
own catalogue reproduces it field by field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

AccessRights = Literal["PUBLIC", "RESTRICTED", "NON_PUBLIC"]
# Node access levels (Beacon's) to the EU access-right vocabulary of dct:accessRights.
ACCESS_FROM_LEVEL: dict[str, AccessRights] = {
    "public": "PUBLIC",
    "registered": "RESTRICTED",
    "controlled": "NON_PUBLIC",
}
UNSPECIFIED = "unspecified: the data holder has not described it yet"


class Coded(BaseModel):
    """A coded value (SNOMED CT, RadLex, NCIt or BIRNLex code as EUCAIM writes it) and its
    label; ``code`` is None for a value outside the vocabulary."""

    model_config = ConfigDict(frozen=True)

    code: str | None = None
    label: str


class AgeRange(BaseModel):
    min: int
    max: int


class Figures(BaseModel):
    """Disclosure-controlled figures of one dataset, as its node released them.

    A withheld count is ``None`` with ``*_below`` giving the threshold ("fewer than 10").
    """

    individuals: int | None = None
    individuals_below: int | None = None
    studies: int | None = None
    studies_below: int | None = None
    age_range: AgeRange | None = None
    sexes: list[Coded] = Field(default_factory=list)
    conditions: list[Coded] = Field(default_factory=list)
    modalities: list[Coded] = Field(default_factory=list)
    manufacturers: list[Coded] = Field(default_factory=list)
    body_parts: list[Coded] = Field(default_factory=list)

    @field_validator("sexes", "conditions", "modalities", "manufacturers", "body_parts")
    @classmethod
    def _canonical(cls, v: list[Coded]) -> list[Coded]:
        """One order, whatever the source (RDF has none): by label, then code."""
        return sorted(set(v), key=lambda c: (c.label, c.code or ""))


class Agent(BaseModel):
    """An organisation: the publisher, or the health data access body (HDAB)."""

    name: str = Field(min_length=1, max_length=300)
    url: str | None = Field(None, max_length=1000)
    email: str | None = Field(None, max_length=300)


class Descriptive(BaseModel):
    """The fields a data holder edits. In a PATCH, a field left out is unchanged and a field
    set to ``null`` goes back to its default."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, min_length=1, max_length=300)
    description: str | None = Field(None, min_length=1, max_length=20000)
    keywords: list[str] | None = Field(None, max_length=50)
    provenance: str | None = Field(None, min_length=1, max_length=5000)
    collection_method: str | None = Field(None, min_length=1, max_length=2000)
    access_rights: AccessRights | None = None
    hdab: Agent | None = None
    version: str | None = Field(None, min_length=1, max_length=50)
    country: str | None = Field(None, description="ISO 3166-1 alpha-3 code, e.g. ESP")

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        out = []
        for k in v:
            k = k.strip()
            if not k or len(k) > 100:
                raise ValueError("each keyword must have 1 to 100 characters")
            if k not in out:
                out.append(k)
        return out

    @field_validator("country")
    @classmethod
    def _country(cls, v: str | None) -> str | None:
        """An ISO 3166-1 country as its alpha-3 code: the code itself, its alpha-2 code or
        its English name ("Germany" is DEU; "GER" is no country's code)."""
        if v is None:
            return None
        import pycountry

        try:
            country = pycountry.countries.lookup(v.strip())
        except LookupError:
            raise ValueError(
                f"{v.strip()!r} is not an ISO 3166-1 country: choose it from the list, or "
                "write its alpha-3 code (DEU for Germany, ESP for Spain)"
            ) from None
        return str(country.alpha_3)


class DatasetRecord(BaseModel):
    """One dataset of the catalogue with every field the EUCAIM DCAT-AP profile requires."""

    key: str = Field(description="this hub's id of the record (used in its URLs)")
    identifier: str = Field(description="dct:identifier, kept as is by harvesters")
    title: str
    description: str
    summary: str = Field(description="a human-readable description of the figures")
    version: str
    tier: int = Field(ge=1, le=3, description="eucaim:interoperabilityLevel")
    access_rights: AccessRights
    hdab: Agent
    publisher: Agent
    provider: str = Field(description="the node (provider) holding the data")
    keywords: list[str]
    provenance: str
    collection_method: str
    country: str | None = None
    figures: Figures
    issued: datetime
    modified: datetime
    origin: str = Field("", description="'' for this hub's nodes, else the harvested catalogue")
    source: str | None = Field(None, description="the dataset's IRI where it was harvested")
    access_url: str = Field(description="the negotiation page to request access")
    editable: bool = False
