"""Validation of Beacon v2 documents against the GA4GH schemas kept as local files.

The schemas (``shared/standards/beacon-v2``: ``framework/json`` and
``models/json/beacon-v2-default-model``) refer to each other by relative paths and by their
published GitHub URLs; :class:`BeaconSchemas` maps both onto the local files with a
``referencing`` registry, so validation works offline. The VRS 1.3 schema the genomic
variations model refers to is not part of that folder: its ``Location`` is checked against
a local copy of VRS's SequenceLocation, and the VRS ``MolecularVariation`` and
``SystemicVariation`` alternatives are left out (``false``), so a variation must be a
``LegacyVariation`` — the form this node and the Beacon reference tools emit.
"""

from __future__ import annotations

import functools
import json
import os
from functools import cached_property
from pathlib import Path
from typing import Any

PUBLISHED = "https://raw.githubusercontent.com/ga4gh-beacon/beacon-v2/main/"
VRS = "https://w3id.org/ga4gh/schema/vrs/1.3/vrs.json"
NUMBER = {
    "type": "object",
    "required": ["type", "value"],
    "properties": {"type": {"const": "Number"}, "value": {"type": "integer"}},
}
VRS_STUB: dict[str, Any] = {
    "definitions": {
        "MolecularVariation": False,
        "SystemicVariation": False,
        "Location": {
            "type": "object",
            "required": ["type", "sequence_id", "interval"],
            "properties": {
                "type": {"const": "SequenceLocation"},
                "sequence_id": {"type": "string"},
                "interval": {
                    "type": "object",
                    "required": ["type", "start", "end"],
                    "properties": {
                        "type": {"const": "SequenceInterval"},
                        "start": NUMBER,
                        "end": NUMBER,
                    },
                },
            },
        },
    }
}
RESPONSES = "framework/json/responses/"
MODEL = "models/json/beacon-v2-default-model/"
ENTRY_SCHEMAS = {
    "individuals": MODEL + "individuals/defaultSchema.json",
    "biosamples": MODEL + "biosamples/defaultSchema.json",
    "g_variants": MODEL + "genomicVariations/defaultSchema.json",
    "analyses": MODEL + "analyses/defaultSchema.json",
    "runs": MODEL + "runs/defaultSchema.json",
    "cohorts": MODEL + "cohorts/defaultSchema.json",
    "datasets": MODEL + "datasets/defaultSchema.json",
}


class SchemaProblem(AssertionError):
    """A document does not conform; the message names the schema and the JSON path."""


def default_root() -> Path | None:
    """``$ONCOFED_BEACON_SCHEMAS``, else ``shared/standards/beacon-v2`` beside the checkout."""
    env = os.environ.get("ONCOFED_BEACON_SCHEMAS")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidates.append(parent / "shared" / "standards" / "beacon-v2")
        candidates.append(parent.parent / "shared" / "standards" / "beacon-v2")
    for c in candidates:
        if (c / "framework" / "json").is_dir():
            return c
    return None


class BeaconSchemas:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._validators: dict[str, Any] = {}

    @cached_property
    def registry(self) -> Any:
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        @functools.cache
        def retrieve(uri: str) -> Resource:
            if uri.startswith(VRS):
                return Resource.from_contents(VRS_STUB, default_specification=DRAFT202012)
            if uri.startswith(PUBLISHED):
                path = self.root / uri[len(PUBLISHED) :]
            elif uri.startswith("file://"):
                path = Path(uri[len("file://") :])
            else:
                raise LookupError(f"no local copy of schema {uri}")
            if not path.exists():  # models/*/defaultSchema.json say ../common/info.json
                shared = self.root / "framework" / "json" / "common" / path.name
                if path.parent.name == "common" and shared.exists():
                    path = shared
            contents = json.loads(path.read_text(encoding="utf-8"))
            return Resource.from_contents(contents, default_specification=DRAFT202012)

        resources = [(VRS, Resource.from_contents(VRS_STUB, default_specification=DRAFT202012))]
        for path in sorted(self.root.rglob("*.json")):
            try:
                contents = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                continue
            resource = Resource.from_contents(contents, default_specification=DRAFT202012)
            relative = path.relative_to(self.root).as_posix()
            resources += [(path.as_uri(), resource), (PUBLISHED + relative, resource)]
        # Everything loaded and crawled once: lookups then never re-crawl (which is slow).
        registry = Registry(retrieve=retrieve).with_resources(resources)  # type: ignore[call-arg]
        return registry.crawl()

    def _validator(self, relative: str) -> Any:
        cached = self._validators.get(relative)
        if cached is not None:
            return cached
        from jsonschema import Draft202012Validator

        path = self.root / relative
        schema = json.loads(path.read_text(encoding="utf-8"))
        schema = {**schema, "$id": path.as_uri()}
        validator = Draft202012Validator(schema, registry=self.registry)
        self._validators[relative] = validator
        return validator

    def check(self, relative: str, document: Any) -> None:
        """Raise :class:`SchemaProblem` listing every violation (best match first)."""
        from jsonschema.exceptions import best_match

        validator = self._validator(relative)
        errors = list(validator.iter_errors(document))
        if errors:
            first = best_match(errors)
            where = "/".join(str(p) for p in first.absolute_path) or "(root)"
            raise SchemaProblem(
                f"{relative}: {len(errors)} problem(s); first at {where}: {first.message[:500]}"
            )

    def check_response(
        self, path: str, document: dict[str, Any], max_records: int | None = None
    ) -> str:
        """Validate a Beacon response by its kind; returns the schema it was checked against.

        ``path`` is the endpoint below the Beacon's root (``/info``, ``/g_variants`` ...).
        """
        endpoint = path.rstrip("/").rsplit("/", 1)[-1] if path.strip("/") else ""
        if "error" in document:
            schema = RESPONSES + "beaconErrorResponse.json"
        elif endpoint in ("", "info", "v2"):
            schema = RESPONSES + "beaconInfoResponse.json"
        elif endpoint == "service-info":
            schema = RESPONSES + "ga4gh-service-info-1-0-0-schema.json"
        elif endpoint == "configuration":
            schema = RESPONSES + "beaconConfigurationResponse.json"
        elif endpoint == "map":
            schema = RESPONSES + "beaconMapResponse.json"
        elif endpoint == "entry_types":
            schema = RESPONSES + "beaconEntryTypesResponse.json"
        elif endpoint == "filtering_terms":
            schema = RESPONSES + "beaconFilteringTermsResponse.json"
        elif isinstance(document.get("response"), dict) and "collections" in document["response"]:
            schema = RESPONSES + "beaconCollectionsResponse.json"
        elif "response" in document:
            schema = RESPONSES + "beaconResultsetsResponse.json"
        elif document.get("meta", {}).get("returnedGranularity") == "count":
            schema = RESPONSES + "beaconCountResponse.json"
        else:
            schema = RESPONSES + "beaconBooleanResponse.json"
        self.check(schema, document)
        entry = _entry_of(path)
        if entry is not None:
            for record in _records(document)[:max_records]:
                self.check(ENTRY_SCHEMAS[entry], record)
        return schema


def _entry_of(path: str) -> str | None:
    parts = [p for p in path.split("/") if p]
    for part in reversed(parts):
        if part in ENTRY_SCHEMAS:
            return part
    return None


def _records(document: dict[str, Any]) -> list[Any]:
    response = document.get("response")
    if not isinstance(response, dict):
        return []
    if "collections" in response:
        return list(response["collections"])
    return [r for rs in response.get("resultSets", []) for r in rs.get("results", [])]
