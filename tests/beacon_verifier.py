"""The EGA Beacon v2 verifier's checks (github.com/EGA-archive/beacon-verifier-v2), restated.

The verifier walks a beacon from its ``/map``: it checks the map, ``/info`` and
``/configuration`` with strict models (unknown keys refused, https URLs, enumerated
environments, granularities and statuses, CURIE ontology ids), then GETs every ``rootUrl``
and cross-link ``url`` the map lists and checks each response's ``meta`` (the received
request summary included) and its result sets. Its logic is restated here, not its code:
it is a Django application that is not on PyPI, and a few of its models reject valid
documents (an ``endpoints`` map, for one, is checked as if it were a single endpoint); where
it departs from the specification, the specification is followed and the comment says so.
URLs must be https except on loopback, where the tests run.

:func:`verify` returns the list of problems (empty: the beacon passes), each naming the URL
and the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

CURIE = re.compile(r"[A-Za-z0-9]+:[A-Za-z0-9]")
GRANULARITIES = {"boolean", "count", "aggregated", "record"}
ENVIRONMENTS = {"prod", "test", "dev", "staging"}
INCLUDE = {"HIT", "MISS", "ALL", "NONE"}

Fetch = Callable[[str], tuple[int, Any]]
"""URL (absolute, as the map gives it) → (HTTP status, parsed JSON body)."""


class _Problems(list[str]):
    def need(self, ok: bool, where: str, what: str) -> bool:
        if not ok:
            self.append(f"{where}: {what}")
        return ok

    def only(self, doc: dict[str, Any], allowed: set[str], where: str) -> None:
        extra = set(doc) - allowed
        self.need(not extra, where, f"unknown keys {sorted(extra)}")

    def url(self, value: Any, where: str) -> None:
        if not self.need(isinstance(value, str), where, "a URL string"):
            return
        parts = urlsplit(value)
        loopback = parts.hostname in ("127.0.0.1", "localhost", "testserver", "::1")
        self.need(parts.scheme == "https" or loopback, where, f"an https URL, got {value!r}")

    def term(self, value: Any, where: str) -> None:
        ok = isinstance(value, dict) and isinstance(value.get("id"), str)
        if self.need(ok, where, "an ontology term {id, label}"):
            self.need(bool(CURIE.match(value["id"])), where, f"id {value['id']!r} is no CURIE")


def check_meta(meta: Any, where: str, problems: _Problems, informational: bool = False) -> None:
    """A response's meta; ``informational`` (map, info, configuration) has no request
    summary (the verifier's own checks of those are disabled in its source)."""
    if not problems.need(isinstance(meta, dict), where, "meta object"):
        return
    for key in ("apiVersion", "beaconId"):
        problems.need(isinstance(meta.get(key), str), f"{where}.{key}", "required string")
    returned = meta.get("returnedSchemas")
    if problems.need(isinstance(returned, list), f"{where}.returnedSchemas", "required list"):
        for i, s in enumerate(returned):
            problems.need(isinstance(s, dict), f"{where}.returnedSchemas[{i}]", "an object")
    g = meta.get("returnedGranularity")
    if g is not None:
        problems.need(g in GRANULARITIES, f"{where}.returnedGranularity", f"{g!r}")
    if informational:
        return
    summary = meta.get("receivedRequestSummary")
    if not problems.need(isinstance(summary, dict), f"{where}.receivedRequestSummary",
                         "required object"):  # fmt: skip
        return
    w = f"{where}.receivedRequestSummary"
    problems.need(isinstance(summary.get("apiVersion"), str), f"{w}.apiVersion", "required")
    problems.need(isinstance(summary.get("pagination"), dict), f"{w}.pagination", "required")
    problems.need(isinstance(summary.get("requestedSchemas"), list), f"{w}.requestedSchemas",
                  "required list")  # fmt: skip
    problems.need(summary.get("requestedGranularity") in GRANULARITIES,
                  f"{w}.requestedGranularity", "boolean, count, aggregated or record")  # fmt: skip
    for f in summary.get("filters") or []:
        problems.need(isinstance(f, str), f"{w}.filters", "strings only")
    inc = summary.get("includeResultsetResponses")
    if inc is not None:
        problems.need(inc in INCLUDE, f"{w}.includeResultsetResponses", f"{inc!r}")
    rp = summary.get("requestParameters")
    if rp is not None:
        problems.need(isinstance(rp, dict), f"{w}.requestParameters", "an object")


def check_map(doc: dict[str, Any], where: str, problems: _Problems) -> list[str]:
    """The map's rules; returns every URL it lists (root URLs and cross-links)."""
    response = doc.get("response", {})
    problems.only(response, {"$schema", "endpointSets"}, f"{where}.response")
    urls: list[str] = []
    sets = response.get("endpointSets")
    if not problems.need(isinstance(sets, dict), f"{where}.endpointSets", "required object"):
        return urls
    allowed = {"entryType", "openAPIEndpointsDefinition", "rootUrl", "singleEntryUrl",
               "filteringTermsUrl", "endpoints"}  # fmt: skip
    for name, s in sets.items():
        w = f"{where}.endpointSets.{name}"
        problems.only(s, allowed, w)
        problems.need(isinstance(s.get("entryType"), str), f"{w}.entryType", "required")
        problems.url(s.get("rootUrl"), f"{w}.rootUrl")
        urls.append(s.get("rootUrl", ""))
        for key in ("singleEntryUrl", "filteringTermsUrl"):
            if key in s:
                problems.url(s[key], f"{w}.{key}")
        # The specification's endpoints: {name: {returnedEntryType, url}}.
        for other, e in (s.get("endpoints") or {}).items():
            problems.only(e, {"url", "returnedEntryType"}, f"{w}.endpoints.{other}")
            problems.url(e.get("url"), f"{w}.endpoints.{other}.url")
            problems.need(isinstance(e.get("returnedEntryType"), str),
                          f"{w}.endpoints.{other}.returnedEntryType", "required")  # fmt: skip
            urls.append(e.get("url", ""))
    return urls


def check_info(doc: dict[str, Any], where: str, problems: _Problems) -> None:
    r = doc.get("response", {})
    problems.only(r, {"alternativeUrl", "apiVersion", "createDateTime", "description",
                      "environment", "id", "info", "name", "organization", "updateDateTime",
                      "version", "welcomeUrl"}, f"{where}.response")  # fmt: skip
    for key in ("id", "name", "description"):
        problems.need(isinstance(r.get(key), str), f"{where}.{key}", "required string")
    if "environment" in r:
        problems.need(r["environment"] in ENVIRONMENTS, f"{where}.environment", r["environment"])
    for key in ("welcomeUrl", "alternativeUrl"):
        if key in r:
            problems.url(r[key], f"{where}.{key}")
    org = r.get("organization")
    if problems.need(isinstance(org, dict), f"{where}.organization", "required object"):
        problems.only(org, {"address", "contactUrl", "description", "id", "info", "logoUrl",
                            "name", "welcomeUrl"}, f"{where}.organization")  # fmt: skip
        for key in ("id", "name"):
            problems.need(isinstance(org.get(key), str), f"{where}.organization.{key}", "required")
        for key in ("welcomeUrl", "logoUrl"):
            if key in org:
                problems.url(org[key], f"{where}.organization.{key}")


def check_configuration(doc: dict[str, Any], where: str, problems: _Problems) -> None:
    r = doc.get("response", {})
    status = r.get("maturityAttributes", {}).get("productionStatus")
    problems.need(status in ("DEV", "TEST", "PROD"), f"{where}.productionStatus", f"{status!r}")
    security = r.get("securityAttributes", {})
    g = security.get("defaultGranularity")
    problems.need(g in GRANULARITIES, f"{where}.defaultGranularity", f"{g!r}")
    for level in security.get("securityLevels", []):
        problems.need(level in ("PUBLIC", "REGISTERED", "CONTROLLED"),
                      f"{where}.securityLevels", f"{level!r}")  # fmt: skip
    for name, t in (r.get("entryTypes") or {}).items():
        w = f"{where}.entryTypes.{name}"
        problems.need(t.get("id") == name, f"{w}.id", "the key it is listed under")
        problems.need(isinstance(t.get("name"), str), f"{w}.name", "required")
        problems.term(t.get("ontologyTermForThisType"), f"{w}.ontologyTermForThisType")
        problems.need(isinstance(t.get("partOfSpecification"), str),
                      f"{w}.partOfSpecification", "required")  # fmt: skip
        schema = t.get("defaultSchema", {})
        for key in ("id", "name", "referenceToSchemaDefinition"):
            problems.need(isinstance(schema.get(key), str), f"{w}.defaultSchema.{key}", "required")


def _check_record(entry: str, rec: Any, where: str, problems: _Problems) -> None:
    if not problems.need(isinstance(rec, dict), where, "a record object"):
        return
    if entry == "g_variants":
        problems.need(isinstance(rec.get("variantInternalId"), str), f"{where}.variantInternalId",
                      "required")  # fmt: skip
        loc = rec.get("variation", {}).get("location", {})
        if loc:
            problems.need(loc.get("type") == "SequenceLocation", f"{where}.location.type", "")
            problems.need(bool(CURIE.match(str(loc.get("sequence_id", "")))),
                          f"{where}.location.sequence_id", "a CURIE")  # fmt: skip
            interval = loc.get("interval", {})
            for end in ("start", "end"):
                n = interval.get(end, {})
                problems.need(n.get("type") == "Number" and isinstance(n.get("value"), int),
                              f"{where}.interval.{end}", "a Number")  # fmt: skip
        for i, call in enumerate(rec.get("caseLevelData", [])):
            if "zygosity" in call:
                problems.term(call["zygosity"], f"{where}.caseLevelData[{i}].zygosity")
        return
    problems.need(isinstance(rec.get("id"), str), f"{where}.id", "required")
    if entry == "individuals":
        problems.term(rec.get("sex"), f"{where}.sex")
        for i, d in enumerate(rec.get("diseases", [])):
            problems.term(d.get("diseaseCode"), f"{where}.diseases[{i}].diseaseCode")
    if entry == "biosamples":
        problems.term(rec.get("biosampleStatus"), f"{where}.biosampleStatus")
        problems.term(rec.get("sampleOriginType"), f"{where}.sampleOriginType")


def check_entry_response(entry: str, doc: Any, where: str, problems: _Problems) -> None:
    if not problems.need(isinstance(doc, dict), where, "a JSON object"):
        return
    check_meta(doc.get("meta"), f"{where}.meta", problems)
    summary = doc.get("responseSummary")
    if entry not in ("cohorts", "datasets"):
        problems.need(isinstance(summary, dict) and isinstance(summary.get("exists"), bool),
                      f"{where}.responseSummary.exists", "required boolean")  # fmt: skip
    response = doc.get("response")
    if not isinstance(response, dict):
        return
    for i, rs in enumerate(response.get("resultSets", [])):
        w = f"{where}.resultSets[{i}]"
        problems.need(isinstance(rs.get("id"), str), f"{w}.id", "required")
        problems.need(isinstance(rs.get("setType"), str), f"{w}.setType", "required")
        problems.need(isinstance(rs.get("exists"), bool), f"{w}.exists", "required boolean")
        problems.need(isinstance(rs.get("resultsCount"), int), f"{w}.resultsCount", "required")
        for j, rec in enumerate(rs.get("results", [])[:20]):
            _check_record(entry, rec, f"{w}.results[{j}]", problems)
    for i, c in enumerate(response.get("collections", [])):
        problems.need(isinstance(c.get("id"), str) and isinstance(c.get("name"), str),
                      f"{where}.collections[{i}]", "id and name required")  # fmt: skip


def verify(root: str, fetch: Fetch, entry_id: Callable[[str], str | None]) -> list[str]:
    """Every problem the verifier would report for the beacon at ``root``.

    ``entry_id(entry)`` gives an id to fill the map's ``{id}`` templates with (None: that
    entry's single-entry and cross-link URLs are skipped).
    """
    problems = _Problems()
    status, doc = fetch(f"{root}/map")
    if not problems.need(status == 200, f"{root}/map", f"HTTP {status}"):
        return problems
    check_meta(doc.get("meta"), "map.meta", problems, informational=True)
    urls = check_map(doc, "map", problems)
    for name, check in (("info", check_info), ("configuration", check_configuration)):
        status, d = fetch(f"{root}/{name}")
        if problems.need(status == 200, f"{root}/{name}", f"HTTP {status}"):
            check_meta(d.get("meta"), f"{name}.meta", problems, informational=True)
            check(d, name, problems)
    for url in urls:
        entry = url.rstrip("/").rsplit("/", 1)[-1]
        if "{id}" in url:
            owner = url.split("/{id}")[0].rsplit("/", 1)[-1]
            some = entry_id(owner)
            if some is None:
                continue
            url = url.replace("{id}", some)
        status, d = fetch(url)
        if problems.need(status == 200, url, f"HTTP {status}"):
            check_entry_response(entry, d, url, problems)
    return problems
