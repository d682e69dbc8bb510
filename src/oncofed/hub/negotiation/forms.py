"""What a researcher submits: the access form (EUCAIM fields, GA4GH DUO purpose codes) and
the requested resources, in our shape and in the Negotiator v3 hand-over shape."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# GA4GH Data Use Ontology terms a request may state as its purpose (and modifiers).
DUO_TERMS: dict[str, str] = {
    "DUO:0000004": "no restriction (NRES)",
    "DUO:0000042": "general research use (GRU)",
    "DUO:0000006": "health or medical or biomedical research (HMB)",
    "DUO:0000007": "disease specific research (DS)",
    "DUO:0000011": "population origins or ancestry research only (POA)",
    "DUO:0000043": "clinical care use (CC)",
    "DUO:0000012": "research specific restrictions (RS)",
    "DUO:0000015": "no general methods research (NMDS)",
    "DUO:0000016": "genetic studies only (GSO)",
    "DUO:0000018": "not for profit, non commercial use only (NPUNCU)",
    "DUO:0000019": "publication required (PUB)",
    "DUO:0000020": "collaboration required (COL)",
    "DUO:0000021": "ethics approval required (IRB)",
    "DUO:0000022": "geographical restriction (GS)",
    "DUO:0000024": "publication moratorium (MOR)",
    "DUO:0000025": "time limit on use (TS)",
    "DUO:0000026": "user specific restriction (US)",
    "DUO:0000027": "project specific restriction (PS)",
    "DUO:0000028": "institution specific restriction (IS)",
    "DUO:0000029": "return to database or resource (RTN)",
    "DUO:0000044": "population origins or ancestry research prohibited (NPOA)",
    "DUO:0000045": "not for profit organisation use only (NPU)",
    "DUO:0000046": "non-commercial use only (NCU)",
}
PRIMARY_DUO = frozenset(
    {"DUO:0000004", "DUO:0000042", "DUO:0000006", "DUO:0000007", "DUO:0000011", "DUO:0000043"}
)
TEXT_FIELDS = ("purpose", "hypothesis", "objectives", "methods", "team", "funding")


class AccessForm(BaseModel):
    """The EUCAIM access form. Every field is needed to submit; a draft may be partial."""

    model_config = ConfigDict(extra="forbid")
    purpose: str = Field("", max_length=10_000)
    duo_codes: list[str] = Field(default_factory=list, max_length=20)
    hypothesis: str = Field("", max_length=10_000)
    objectives: str = Field("", max_length=10_000)
    methods: str = Field("", max_length=10_000)
    team: str = Field("", max_length=10_000)
    funding: str = Field("", max_length=10_000)
    ethics_approval: str = Field("", max_length=10_000, description="committee, number, date")

    @field_validator("duo_codes")
    @classmethod
    def _known_duo(cls, codes: list[str]) -> list[str]:
        unknown = [c for c in codes if c not in DUO_TERMS]
        if unknown:
            raise ValueError(
                f"unknown DUO code {', '.join(unknown)}; use GA4GH DUO ids such as "
                "DUO:0000042 (general research use) or DUO:0000006 (health/medical research)"
            )
        return list(dict.fromkeys(codes))

    def missing(self) -> list[str]:
        """Fields still needed before the request can be submitted."""
        out = [name for name in (*TEXT_FIELDS, "ethics_approval") if not getattr(self, name)]
        if not PRIMARY_DUO & set(self.duo_codes):
            out.append("duo_codes (one primary purpose, e.g. DUO:0000006)")
        return out


class ResourceRef(BaseModel):
    """A requested dataset at one provider. `provider` is the node's name; the Negotiator
    shape's `organization` ({externalId | name}) is accepted for it too."""

    model_config = ConfigDict(extra="allow")
    id: str = Field(min_length=1, max_length=200)
    name: str = Field("", max_length=300)
    provider: str | None = Field(None, max_length=200)
    organization: dict[str, Any] | None = None

    def provider_name(self) -> str | None:
        if self.provider:
            return self.provider
        org = self.organization or {}
        for key in ("externalId", "name", "id"):
            if isinstance(org.get(key), str) and org[key]:
                return str(org[key])
        return None


class NegotiationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=300)
    resources: list[ResourceRef] = Field(min_length=1, max_length=200)
    form: AccessForm = Field(default_factory=AccessForm)


class HandoverRequest(BaseModel):
    """Negotiator v3 `POST /api/v3/requests` body sent by a discovery service."""

    model_config = ConfigDict(extra="allow")
    url: str = Field("", max_length=2000)
    humanReadable: str = Field("", max_length=10_000)
    resources: list[ResourceRef] = Field(min_length=1, max_length=200)


class EventRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event: str = Field(min_length=1, max_length=60)
    note: str = Field("", max_length=10_000)


class ResourceEventRequest(EventRequest):
    conditions: str = Field("", max_length=10_000, description="with INDICATE_ACCESS_CONDITIONS")
    grant_days: int | None = Field(None, ge=1, le=3650, description="visa lifetime for a grant")


class CommentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: str = Field(min_length=1, max_length=20_000)
    provider: str | None = Field(None, max_length=200, description="address one provider's DAC")


class RevokeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)
