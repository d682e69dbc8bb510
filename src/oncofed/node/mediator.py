"""The EUCAIM provider ("mediator") endpoint: federated search for EUCAIM's Focus agent.

A EUCAIM site runs Samply Focus next to its provider API; Focus hands each search on with
the site's configured ``Authorization`` header and expects the mediator response of
STANDARDS §2. Two request forms are accepted on the same path:

- ``POST /mediator`` with the transport envelope ``{"ast": <Operation>, "id": "..."}``
  (or a bare AST), the full query language including our ``oncofed:`` keys;
- ``GET /mediator?gender=male&diagnosis=SNOMEDCT399068003&modality=MR&bodyPart=prostate
  &manufacturer=Siemens``, the flat form Focus's ``eucaim_api`` endpoint type sends
  (repeated parameters are OR-ed, different parameters AND-ed).

Authentication: ``Authorization: ApiKey <key>`` (``Bearer <key>`` and ``Secret <key>``, the
scheme EUCAIM's reference dataset service uses, are accepted too), compared in constant time
with the keys configured at the node. With no key configured the endpoint refuses everything.

Each key belongs to one upstream network (``mediator_api_keys`` in the node's settings, the
network's name to its key) and is charged as its own requester, ``mediator:<network>``, with
the mediator limits of ``policy.toml`` (``[mediator]``): one network's searches use up its own
daily budget and rate limit, never another network's, nor a researcher's. Answers pass the
node's disclosure control like any other search.

Strict EUCAIM mode (``mediator_strict`` in the settings): Focus's response model declares the
counts as integers and ``age_range`` as ``{min, max}`` integers, so a withheld count is sent
as 0 (its ``*_below`` field still says it was withheld) and ``age_range`` is always an object
(``{"min": 0, "max": 0}`` with ``age_range_withheld: true`` when none is released).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from oncofed.node.search import AuditSink, answer_search
from oncofed.node.store import NodeStore
from oncofed.privacy.errors import BudgetExhausted, RateLimited
from oncofed.privacy.ledger import PrivacyLedger
from oncofed.privacy.policy import DisclosurePolicy
from oncofed.query.response import AgeRange, Collection, MediatorResponse
from oncofed.query.validate import Problem, QueryValidationError
from oncofed.query.vocabulary import BODY_PART, DIAGNOSIS, MANUFACTURER, MODALITY, SEX, KeySpec

MEDIATOR_PATH = "/mediator"


DEFAULT_NETWORK = "eucaim"


@dataclass(frozen=True)
class MediatorContext:
    """What the endpoint needs from the node; built by the node app per request or once.

    ``api_keys``: upstream network name -> its key; ``api_key``: one key, for the network
    ``eucaim``. ``policy`` carries the limits a network's key is charged under."""

    store: NodeStore
    policy: DisclosurePolicy
    state_engine: Engine
    node_id: str
    api_key: str | None = None
    api_keys: Mapping[str, str] = field(default_factory=dict)
    strict: bool = False
    audit: AuditSink | None = None
    ledger: PrivacyLedger | None = None

    @property
    def keys(self) -> dict[str, str]:
        keys = {name: key for name, key in self.api_keys.items() if key}
        if self.api_key:
            keys.setdefault(DEFAULT_NETWORK, self.api_key)
        return keys


class MediatorError(Exception):
    """An HTTP error answer: status, JSON body and headers."""

    def __init__(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}
        super().__init__(f"{status}: {body}")


SCHEMES = ("apikey", "bearer", "secret")


def check_api_key(expected: str | Mapping[str, str] | None, authorization: str | None) -> str:
    """The network whose key ``authorization`` carries; MediatorError when none does."""
    if isinstance(expected, str):
        expected = {DEFAULT_NETWORK: expected}
    if not expected:
        raise MediatorError(
            403,
            {
                "error": "disabled",
                "detail": "this node has no mediator API key configured, so the "
                "EUCAIM mediator endpoint refuses every request",
            },
        )
    scheme, _, given = (authorization or "").strip().partition(" ")
    found = None
    if scheme.lower() in SCHEMES:
        for network, key in sorted(expected.items()):
            # Every key is compared (constant time each), whichever matches.
            if hmac.compare_digest(given.strip().encode(), key.encode()) and found is None:
                found = network
    if found is None:
        raise MediatorError(
            401,
            {
                "error": "unauthorized",
                "detail": "send the node's key as 'Authorization: ApiKey <key>'",
            },
            {"WWW-Authenticate": "ApiKey"},
        )
    return found


def handle_mediator_request(
    ctx: MediatorContext, body: Any, authorization: str | None
) -> MediatorResponse:
    """Authenticate, then answer a mediator request; errors as :class:`MediatorError`."""
    network = check_api_key(ctx.keys, authorization)
    if not isinstance(body, dict):
        raise MediatorError(
            422,
            {
                "error": "invalid_query",
                "problems": [
                    Problem("$", 'the body must be {"ast": <operation>, "id": "..."}').as_dict()
                ],
            },
        )
    ast = body.get("ast", body)
    try:
        response = answer_search(
            ctx.store,
            ast,
            f"mediator:{network}",
            ctx.policy,
            ctx.state_engine,
            ctx.node_id,
            audit=ctx.audit,
            ledger=ctx.ledger,
        )
        return strict_response(response) if ctx.strict else response
    except QueryValidationError as exc:
        raise MediatorError(422, exc.as_dict()) from exc
    except RateLimited as exc:
        raise MediatorError(
            429,
            {"error": exc.reason, "detail": str(exc)},
            {"Retry-After": str(int(exc.retry_after_s + 0.999))},
        ) from exc
    except BudgetExhausted as exc:
        raise MediatorError(
            429,
            {"error": exc.reason, "detail": str(exc), "resets_at": exc.resets_at.isoformat()},
            {"Retry-After": str(max(1, int((exc.resets_at.timestamp() - time.time()) + 0.999)))},
        ) from exc


def strict_response(response: MediatorResponse) -> MediatorResponse:
    """The answer as Focus's EUCAIM response model types it: integer counts (a withheld
    count as 0, its ``*_below`` kept) and an ``age_range`` object in every collection."""
    collections = []
    for c in response.collections:
        extra: dict[str, Any] = {}
        if c.age_range is None:
            extra["age_range_withheld"] = True
        data = c.model_dump()
        data.update(
            subjects_count=c.subjects_count or 0,
            studies_count=c.studies_count or 0,
            age_range=c.age_range or AgeRange(min=0, max=0),
            **extra,
        )
        collections.append(Collection.model_validate(data))
    return MediatorResponse(collections=collections)


# Focus's eucaim_api parameters and the keys they stand for.
_FLAT_PARAMS: dict[str, KeySpec] = {
    "gender": SEX,
    "diagnosis": DIAGNOSIS,
    "modality": MODALITY,
    "bodyPart": BODY_PART,
    "manufacturer": MANUFACTURER,
}
_ALIASES = {"general electric": "birnlex_12833", "pet": "RID10337", "spect": "RID10334"}


def _flat_code(spec: KeySpec, value: str) -> str:
    if spec.code(value) is not None:
        return value
    wanted = value.strip().lower()
    if wanted in _ALIASES and spec.code(_ALIASES[wanted]) is not None:
        return _ALIASES[wanted]
    for code in spec.codes:
        if code.label.lower() == wanted:
            return code.code
    raise QueryValidationError(
        [
            Problem(
                f"$.{spec.key}",
                f"unknown value {value!r} for key {spec.key!r} ({spec.label}); "
                f"allowed: {', '.join(sorted({c.label for c in spec.codes}))}",
                spec.key,
                value,
            )
        ]
    )


def ast_from_params(params: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The AST for Focus's flat GET form, in the EUCAIM shape OR(AND(OR(...), ...))."""
    groups = []
    for name in sorted(params):
        spec = _FLAT_PARAMS.get(name)
        if spec is None:
            raise QueryValidationError(
                [
                    Problem(
                        f"$.{name}",
                        f"unknown search parameter {name!r} (value "
                        f"{list(params[name])!r}); use {', '.join(_FLAT_PARAMS)}",
                        name,
                        list(params[name]),
                    )
                ]
            )
        groups.append(
            {
                "operand": "OR",
                "children": [
                    {"key": spec.key, "type": "EQUALS", "value": _flat_code(spec, v)}
                    for v in params[name]
                ],
            }
        )
    return {"operand": "OR", "children": [{"operand": "AND", "children": groups}]}


def make_mediator_router(get_context: Callable[..., MediatorContext]) -> APIRouter:
    """An APIRouter with ``POST`` and ``GET`` on ``/mediator``; mount it on the node app."""
    router = APIRouter(tags=["eucaim"])

    def respond(call: Callable[[], MediatorResponse]) -> JSONResponse:
        try:
            return JSONResponse(call().model_dump(mode="json"))
        except MediatorError as exc:
            return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

    @router.post(MEDIATOR_PATH, response_model=MediatorResponse)
    async def mediator_post(
        request: Request, ctx: MediatorContext = Depends(get_context)
    ) -> JSONResponse:
        authorization = request.headers.get("authorization")
        try:
            check_api_key(ctx.keys, authorization)  # before reading the body
            body = await request.json()
        except MediatorError as exc:
            return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)
        except ValueError:
            return JSONResponse(
                {
                    "error": "invalid_query",
                    "problems": [Problem("$", "the body is not JSON").as_dict()],
                },
                status_code=422,
            )
        return await run_in_threadpool(
            respond, lambda: handle_mediator_request(ctx, body, authorization)
        )

    @router.get(MEDIATOR_PATH, response_model=MediatorResponse)
    def mediator_get(request: Request, ctx: MediatorContext = Depends(get_context)) -> JSONResponse:
        authorization = request.headers.get("authorization")
        params: dict[str, list[str]] = {}
        for name, value in request.query_params.multi_items():
            params.setdefault(name, []).append(value)

        def call() -> MediatorResponse:
            check_api_key(ctx.keys, authorization)
            try:
                ast = ast_from_params(params)
            except QueryValidationError as exc:
                raise MediatorError(422, exc.as_dict()) from exc
            return handle_mediator_request(ctx, {"ast": ast}, authorization)

        return respond(call)

    return router
