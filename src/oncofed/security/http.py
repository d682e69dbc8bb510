"""What the hub and the node apply to every untrusted HTTP request.

- **Bounded bodies.** An app refuses a body over ``DEFAULT_BODY_BYTES`` with 413 before it
  is read whole (Starlette's ``RequestBodyLimitMiddleware``, set through FastAPI's
  ``max_body_size``); only routes that expect more say so with their own limit
  (``RESULT_BODY_BYTES`` for a node's result, an attachment's size for uploads). A 10 MB
  body to an anonymous route once held the hub's event loop for 12 s.
- **JSON parsed off the event loop** where a route accepts large bodies
  (:class:`ThreadedJSONRoute`): one big result must not stall every other request.
- **Errors that never echo input.** A 422 names the field and what is wrong, never the
  value sent (FastAPI's default handler returns each error's ``input``: a 10 MB body came
  back as a 10 MB error).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

DEFAULT_BODY_BYTES = 256 * 1024
"""Any request body (JSON, form) unless its route says otherwise: searches, Beacon
requests, enrolment, negotiation forms and comments all fit many times over."""
RESULT_BODY_BYTES = 16 * 1024 * 1024
"""A node's signed result of one task (the long-poll transport's ``PUT .../result``)."""
INLINE_JSON_BYTES = 64 * 1024
"""Bodies up to this size are parsed on the event loop (a thread hop costs more)."""
MAX_ERRORS = 20
MAX_TEXT = 200


def _short(value: object) -> str | int:
    if isinstance(value, int):
        return value
    text = str(value)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


def validation_errors(errors: list[Any]) -> list[dict[str, Any]]:
    """Pydantic errors as ``{loc, msg, type}``: where and what, never the input (nor
    ``ctx``, which for some errors carries it); long keys and messages cut short."""
    out = [
        {
            "loc": [_short(part) for part in err.get("loc", ())],
            "msg": _short(err.get("msg", "invalid")),
            "type": _short(err.get("type", "value_error")),
        }
        for err in errors[:MAX_ERRORS]
    ]
    if len(errors) > MAX_ERRORS:
        out.append({"loc": [], "msg": f"and {len(errors) - MAX_ERRORS} more errors",
                    "type": "too_many_errors"})  # fmt: skip
    return out


_LONG_WORD = re.compile(rf"\S{{{MAX_TEXT // 2},}}")


def short_message(text: str) -> str:
    """An error message with any long run of input it quotes cut to an excerpt: errors
    name the offending value so the user can find it, but never hand a body back."""
    text = _LONG_WORD.sub(lambda m: m[0][: MAX_TEXT // 4] + "…", text)
    return text if len(text) <= 4 * MAX_TEXT else text[: 4 * MAX_TEXT] + "…"


async def _validation_error(request: Request, exc: Exception) -> Response:
    del request
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(status_code=422, content={"detail": validation_errors(list(exc.errors()))})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.detail, str):
        exc.detail = short_message(exc.detail)
    return await http_exception_handler(request, exc)


def harden(app: FastAPI) -> None:
    """Install the error handlers above (the body limit is the app's ``max_body_size``)."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


class ThreadedJSONRequest(Request):
    """A request whose large JSON body is parsed in a worker thread."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            if len(body) > INLINE_JSON_BYTES:
                self._json = await run_in_threadpool(json.loads, body)
            else:
                self._json = json.loads(body)
        return self._json


class ThreadedJSONRoute(APIRoute):
    """A route that parses its (large) JSON body off the event loop: FastAPI's own parse
    runs ``json.loads`` inline, which for megabytes blocks every other request."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def threaded(request: Request) -> Response:
            return await handler(ThreadedJSONRequest(request.scope, request.receive))

        return threaded
