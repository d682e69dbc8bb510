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

import asyncio
import json
import re
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import FastAPI, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    del request
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(status_code=422, content={"detail": validation_errors(list(exc.errors()))})


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.detail, str):
        exc.detail = short_message(exc.detail)
    return await http_exception_handler(request, exc)


BODY_SECONDS = 30.0
"""A request's whole body must arrive within this long (slow-body clients hold workers)."""


class _SlowBody(StarletteHTTPException):
    """An HTTP error, so that FastAPI's body parsing passes it on as a 408 (it turns any
    other exception while reading the body into a 400)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"the request body did not arrive within {seconds:.0f} s")


class BodyDeadline:
    """ASGI middleware: 408 for a request whose body does not arrive within ``seconds``.

    Only the body is timed: once its last part came, ``receive`` is the app's own again (a
    server-sent event stream waits on it for the client's disconnect, for minutes).
    uvicorn bounds idle connections (``timeout_keep_alive``) but not a body trickled in a
    byte at a time, which held a connection and its handler as long as the client liked.
    """

    def __init__(self, app: ASGIApp, seconds: float = BODY_SECONDS) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        body_done = False
        started = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    message = await receive()
            except TimeoutError:
                raise _SlowBody(self.seconds) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, tracked_send)
        except _SlowBody as exc:  # raised outside a route (the exception handlers missed it)
            if started:
                raise
            await PlainTextResponse(str(exc.detail), status_code=408)(scope, receive, send)


def harden(app: FastAPI, body_seconds: float = BODY_SECONDS) -> None:
    """Install the error handlers above and the body deadline (the body size limit is the
    app's ``max_body_size``)."""
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_middleware(BodyDeadline, seconds=body_seconds)


DB_INT_MAX = 2**31 - 1
"""The largest id or number a route takes: PostgreSQL's ``integer`` (SQLite allows 2^63 - 1);
a larger one is refused at the edge with 422 instead of failing in the database."""
DbId = Annotated[int, Path(ge=0, le=DB_INT_MAX)]


def small_int(text: str, lo: int = 0, hi: int = DB_INT_MAX) -> int | None:
    """A form field's whole number in [lo, hi], or None. ``str.isdigit`` is no test: it
    accepts '²' and other digits that ``int`` refuses."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        return None
    value = int(text)
    return value if lo <= value <= hi else None


IDLE_SECONDS = 5
"""An idle keep-alive connection is closed after this long."""


def server_options(trusted_proxies: list[str]) -> dict[str, Any]:
    """uvicorn settings for an exposed service.

    Forwarded headers are believed only from the configured proxies: uvicorn's default
    trusts them from 127.0.0.1, so any local client (or anything behind a local tunnel)
    could pick its own address, and with it its budget and rate-limit identity.
    """
    return {
        "proxy_headers": bool(trusted_proxies),
        "forwarded_allow_ips": ",".join(trusted_proxies) or "",
        "timeout_keep_alive": IDLE_SECONDS,
        "h11_max_incomplete_event_size": 16 * 1024,  # request line and headers
    }


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
