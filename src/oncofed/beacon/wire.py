"""Beacon v2 wire format: request models, framework documents, the ``beacon.query`` task.

Nothing here touches a store: the node's engine (:mod:`oncofed.node.beacon.engine`) and the
hub's aggregator (:mod:`oncofed.hub.beacon`) both speak through these definitions. (It lives
under ``node/beacon`` for now; being shared, it belongs in a top-level ``oncofed/beacon``
package, see the issue-4 report.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oncofed import __version__
from oncofed.protocol import TaskBody

API_VERSION = "v2.0.0"
SPEC_URL = "https://raw.githubusercontent.com/ga4gh-beacon/beacon-v2/main/"
FRAMEWORK_URL = SPEC_URL + "framework/json/"
MODEL_URL = SPEC_URL + "models/json/beacon-v2-default-model/"
Granularity = Literal["boolean", "count", "record"]
ORDER = {"boolean": 0, "count": 1, "record": 2}
ENTRY_TYPES = ("individuals", "biosamples", "g_variants", "analyses", "runs", "cohorts", "datasets")
SCHEMA_IDS = {
    "individuals": "beacon-individual-v2.0.0",
    "biosamples": "beacon-biosample-v2.0.0",
    "g_variants": "beacon-g_variant-v2.0.0",
    "analyses": "beacon-analysis-v2.0.0",
    "runs": "beacon-run-v2.0.0",
    "cohorts": "beacon-cohort-v2.0.0",
    "datasets": "beacon-dataset-v2.0.0",
}
ENTRY_NAMES = {
    "individuals": ("individual", "Individual", "NCIT:C25190", "Person"),
    "biosamples": ("biosample", "Biosample", "NCIT:C70699", "Biospecimen"),
    "g_variants": ("genomicVariant", "Genomic Variants", "ENSGLOSSARY:0000092", "SNP"),
    "analyses": ("analysis", "Bioinformatics analysis", "edam:operation_2945", "Analysis"),
    "runs": ("run", "Sequencing run", "NCIT:C148088", "Sequencing run"),
    "cohorts": ("cohort", "Cohort", "NCIT:C61512", "Cohort"),
    "datasets": ("dataset", "Dataset", "NCIT:C47824", "Data set"),
}
SEX_TERMS = {
    "male": ("NCIT:C20197", "male"),
    "female": ("NCIT:C16576", "female"),
    "other": ("NCIT:C45908", "intersex"),
    "unknown": ("NCIT:C17998", "unknown"),
}


class BeaconError(ValueError):
    """A request the beacon cannot answer; ``status`` is the HTTP status to send."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Pagination(BaseModel):
    skip: int = Field(0, ge=0)
    limit: int = Field(10, ge=0, le=1000)


class Filter(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    operator: str | None = None
    value: str | int | float | None = None
    includeDescendantTerms: bool = True
    scope: str | None = None


# The request parameters of the default model (``requestParameters.json`` of each entry
# type), flat: what the engine answers. ``datasets`` is the framework's dataset selection.
VARIANT_PARAMETERS = frozenset({
    "referenceName", "start", "end", "referenceBases", "alternateBases", "variantType",
    "assemblyId", "geneId", "aminoacidChange", "variantInternalId",
})  # fmt: skip
# Documented by the model but not answered here: refused by name rather than ignored.
UNSUPPORTED_PARAMETERS = frozenset({
    "mateName", "genomicAlleleShortForm", "variantMinLength", "variantMaxLength",
})  # fmt: skip
# Keys under which the parameters may come nested: the model's ``g_variant`` (its
# requestParameters.json), the entity ids (as ``receivedRequestSummary`` echoes them) and
# the older ``genomicVariation``.
NESTING_KEYS = frozenset({
    "g_variant", "g_variants", "genomicVariant", "genomicVariation", "genomicVariations",
    "individual", "biosample", "analysis", "run",
})  # fmt: skip


def flatten_parameters(raw: dict[str, Any]) -> dict[str, Any]:
    """Every documented shape of ``requestParameters`` as one flat mapping.

    Accepts the flat form, the nesting under an entity key (``{"g_variant": {...}}``) and
    the framework's dataset selection (``{"datasets": {"datasetIds": [...]}}``, a list, or a
    comma-separated string). Anything else is a :class:`BeaconError`: a parameter silently
    dropped would widen the query and answer a question the caller did not ask.
    """
    out: dict[str, Any] = {}

    def put(key: str, value: Any, where: str) -> None:
        if key in out and out[key] != value:
            raise BeaconError(f"{where}: given twice with different values")
        out[key] = value

    for key, value in raw.items():
        where = f"requestParameters.{key}"
        if key in NESTING_KEYS and isinstance(value, dict):
            for inner, v in flatten_parameters(value).items():
                put(inner, v, f"{where}.{inner}")
        elif key in ("datasets", "datasetIds"):
            put("datasets", _dataset_ids(value, where), where)
        elif key in VARIANT_PARAMETERS:
            put(key, value, where)
        elif key in UNSUPPORTED_PARAMETERS:
            raise BeaconError(f"{where}: a Beacon v2 parameter this beacon does not answer")
        else:
            known = ", ".join(sorted(VARIANT_PARAMETERS | {"datasets"}))
            raise BeaconError(f"{where}: not a request parameter here; known: {known}")
    return out


def _dataset_ids(value: Any, where: str) -> list[str]:
    if isinstance(value, dict):
        extra = set(value) - {"datasetIds"}
        if extra or "datasetIds" not in value:
            raise BeaconError(f"{where}: expected {{'datasetIds': [ids]}}, got {sorted(value)}")
        value = value["datasetIds"]
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BeaconError(f"{where}: expected a list of dataset ids, got {value!r}")
    return value


class RequestQuery(BaseModel):
    model_config = ConfigDict(extra="allow")

    requestParameters: dict[str, Any] = Field(default_factory=dict)
    filters: list[Filter | str] = Field(default_factory=list)
    includeResultsetResponses: Literal["HIT", "ALL", "MISS", "NONE"] = "HIT"
    pagination: Pagination = Field(default_factory=Pagination)
    requestedGranularity: Granularity = "boolean"
    testMode: bool = False


class RequestMeta(BaseModel):
    model_config = ConfigDict(extra="allow")

    apiVersion: str = API_VERSION
    requestedSchemas: list[dict[str, Any]] = Field(default_factory=list)


class BeaconRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    meta: RequestMeta = Field(default_factory=RequestMeta)
    query: RequestQuery = Field(default_factory=RequestQuery)

    @classmethod
    def parse(cls, body: Any) -> BeaconRequest:
        if body is not None and not isinstance(body, dict):
            raise BeaconError("the request body must be a JSON object")
        try:
            request = cls.model_validate(body or {})
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise BeaconError(f"request field {where}: {err['msg']}") from exc
        request.query.requestParameters = flatten_parameters(request.query.requestParameters)
        return request

    @classmethod
    def from_json(cls, raw: bytes) -> BeaconRequest:
        """A POST body: empty means the defaults, anything but a JSON object is an error."""
        if not raw.strip():
            return cls.parse(None)
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise BeaconError(f"the request body is not valid JSON: {exc}") from None
        return cls.parse(body)

    @classmethod
    def from_query(cls, params: dict[str, str]) -> BeaconRequest:
        """A GET's query parameters as a Beacon request (filters comma-separated)."""
        query: dict[str, Any] = {}
        rp = {k: v for k, v in params.items() if k not in GET_KEYS}
        if rp:
            query["requestParameters"] = rp
        if "filters" in params:
            query["filters"] = [f for f in params["filters"].split(",") if f]
        for key in ("requestedGranularity", "includeResultsetResponses"):
            if key in params:
                query[key] = params[key]
        if "testMode" in params:
            query["testMode"] = params["testMode"].lower() == "true"
        page = {k: params[k] for k in ("skip", "limit") if k in params}
        if page:
            query["pagination"] = page
        meta: dict[str, Any] = {}
        if "requestedSchema" in params:
            meta["requestedSchemas"] = [{"schema": params["requestedSchema"]}]
        return cls.parse({"meta": meta, "query": query})


GET_KEYS = {
    "requestedGranularity", "skip", "limit", "includeResultsetResponses", "filters",
    "testMode", "requestedSchema",
}  # fmt: skip
"""Query-string keys that are request fields; every other key is a request parameter."""


@dataclass
class BeaconConfig:
    """What the node says about itself, and its granularity caps per access level."""

    beacon_id: str
    name: str
    organization: str
    description: str = "oncofed node: clinical, imaging and genomic data of cancer patients"
    environment: str = "prod"
    welcome_url: str = ""
    level_caps: dict[str, Granularity] = field(
        default_factory=lambda: {"public": "count", "registered": "count", "controlled": "boolean"}
    )
    max_limit: int = 1000


def _granularity_min(a: str, b: str) -> Granularity:
    out = a if ORDER[a] <= ORDER[b] else b
    return out  # type: ignore[return-value]


def _ontology_term(term_id: str, label: str | None = None) -> dict[str, str]:
    return {"id": term_id, "label": label or term_id}


def _model_dir(entry: str) -> str:
    return "genomicVariations" if entry == "g_variants" else entry


class BeaconFramework:
    """The framework documents (info, service-info, configuration, map, entry types)."""

    def __init__(self, config: BeaconConfig) -> None:
        self.config = config

    def meta(self, entry: str | None = None) -> dict[str, Any]:
        schemas = [] if entry is None else [self._schema_ref(entry)]
        return {"beaconId": self.config.beacon_id, "apiVersion": API_VERSION,
                "returnedSchemas": schemas}  # fmt: skip

    def _schema_ref(self, entry: str) -> dict[str, str]:
        return {"entityType": ENTRY_NAMES[entry][0], "schema": SCHEMA_IDS[entry]}

    def info(self) -> dict[str, Any]:
        c = self.config
        return {
            "meta": self.meta(),
            "response": {
                "id": c.beacon_id,
                "name": c.name,
                "apiVersion": API_VERSION,
                "environment": c.environment,
                "organization": {"id": c.beacon_id.split(".")[0] or c.organization,
                                 "name": c.organization},
                "description": c.description,
                "version": __version__,
                **({"welcomeUrl": c.welcome_url} if c.welcome_url else {}),
            },
        }  # fmt: skip

    def service_info(self) -> dict[str, Any]:
        c = self.config
        return {
            "id": c.beacon_id,
            "name": c.name,
            "type": {"group": "org.ga4gh", "artifact": "beacon", "version": API_VERSION},
            "description": c.description,
            "organization": {
                "name": c.organization,
                "url": c.welcome_url or "https://oncofed.invalid",
            },
            "version": __version__,
            "environment": c.environment,
        }

    def entry_types(self) -> dict[str, Any]:
        out = {}
        for entry in ENTRY_TYPES:
            name, label, term, term_label = ENTRY_NAMES[entry]
            out[name] = {
                "id": name,
                "name": label,
                "ontologyTermForThisType": _ontology_term(term, term_label),
                "partOfSpecification": "Beacon v2.0.0",
                "defaultSchema": {
                    "id": SCHEMA_IDS[entry],
                    "name": f"Default schema for {label.lower()}",
                    "referenceToSchemaDefinition": (
                        f"{MODEL_URL}{_model_dir(entry)}/defaultSchema.json"
                    ),
                    "schemaVersion": API_VERSION,
                },
            }
        return out

    def configuration(self) -> dict[str, Any]:
        return {
            "meta": self.meta(),
            "response": {
                "$schema": f"{FRAMEWORK_URL}configuration/beaconConfigurationSchema.json",
                "maturityAttributes": {
                    "productionStatus": "PROD" if self.config.environment == "prod" else "DEV"
                },
                "securityAttributes": {
                    "defaultGranularity": "boolean",
                    "securityLevels": ["PUBLIC", "REGISTERED", "CONTROLLED"],
                },
                "entryTypes": self.entry_types(),
            },
        }

    def map(self, root_url: str) -> dict[str, Any]:
        sets = {}
        for entry in ENTRY_TYPES:
            name = ENTRY_NAMES[entry][0]
            endpoints = {}
            for other in ("g_variants", "biosamples", "individuals", "analyses", "runs"):
                if other != entry and entry not in ("cohorts", "datasets"):
                    endpoints[other] = {
                        "returnedEntryType": ENTRY_NAMES[other][0],
                        "url": f"{root_url}/{entry}/{{id}}/{other}",
                    }
            sets[name] = {
                "entryType": name,
                "rootUrl": f"{root_url}/{entry}",
                "singleEntryUrl": f"{root_url}/{entry}/{{id}}",
                **({"endpoints": endpoints} if endpoints else {}),
            }
        return {
            "meta": self.meta(),
            "response": {
                "$schema": f"{FRAMEWORK_URL}configuration/beaconMapSchema.json",
                "endpointSets": sets,
            },
        }

    def _received(self, request: BeaconRequest, entry: str) -> dict[str, Any]:
        q = request.query
        received: dict[str, Any] = {
            "apiVersion": request.meta.apiVersion or API_VERSION,
            "requestedSchemas": request.meta.requestedSchemas or [self._schema_ref(entry)],
            "pagination": {"skip": q.pagination.skip, "limit": q.pagination.limit},
            "requestedGranularity": q.requestedGranularity,
            "includeResultsetResponses": q.includeResultsetResponses,
            "testMode": q.testMode,
        }
        if q.filters:
            received["filters"] = [f if isinstance(f, str) else f.id for f in q.filters]
        if q.requestParameters:  # the schema wants {key: object}: keyed by the entity
            received["requestParameters"] = {ENTRY_NAMES[entry][0]: q.requestParameters}
        return received


# ---------------------------------------------------------------------- hub fan-out

BEACON_TASK = "beacon.query"


class BeaconQueryBody(TaskBody):
    """Body of a ``beacon.query`` task (validated by hub and node; see protocol.py)."""

    model_config = ConfigDict(extra="forbid")

    entry_type: str = Field(
        pattern=r"^(individuals|biosamples|g_variants|analyses|runs|cohorts|datasets|filtering_terms)$"
    )
    entry_id: str | None = Field(None, max_length=200)
    via: str | None = Field(None, max_length=40)
    request: dict[str, Any] = Field(default_factory=dict)
    passport: str | None = Field(None, max_length=20000)


def add_get_post(router: APIRouter, path: str, endpoint: Any, **options: Any) -> None:
    """Beacon answers GET and POST alike: one route each, so each has its own OpenAPI id."""
    name = options.pop("name", None) or endpoint.__name__
    for method in ("GET", "POST"):
        router.add_api_route(
            path, endpoint, methods=[method], name=f"{name}_{method.lower()}", **options
        )
