"""Beacon error responses: every error under a Beacon prefix is a ``beaconErrorResponse``.

A Beacon client reads ``error.errorCode`` and ``error.errorMessage``; FastAPI's own
``{"detail": ...}`` (a 401 from a missing token, a 404 for an unknown path, a 422 from a
path parameter) would leave it without either. :func:`install_error_handlers` answers those
in the Beacon shape under the prefix and leaves every other path to FastAPI's handlers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from oncofed.beacon.wire import API_VERSION
from oncofed.security.http import short_message


def error_document(beacon_id: str, status: int, message: str) -> dict[str, Any]:
    """A beaconErrorResponse (its meta is a full response meta, so it echoes a summary)."""
    return {
        "meta": {
            "beaconId": beacon_id,
            "apiVersion": API_VERSION,
            "returnedSchemas": [],
            "returnedGranularity": "boolean",
            "receivedRequestSummary": {
                "apiVersion": API_VERSION,
                "requestedSchemas": [],
                "pagination": {"skip": 0, "limit": 0},
                "requestedGranularity": "boolean",
            },
        },
        "error": {"errorCode": status, "errorMessage": short_message(message)},
    }


def error_response(
    beacon_id: str, status: int, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content=error_document(beacon_id, status, message),
        headers=dict(headers) if headers else None,
    )


def install_error_handlers(
    app: FastAPI, beacon_id: Callable[[Request], str], prefix: str = "/beacon/v2"
) -> None:
    """Answer HTTP and validation errors under ``prefix`` as Beacon error responses."""

    def under(request: Request) -> bool:
        path = request.url.path
        return path == prefix or path.startswith(prefix.rstrip("/") + "/")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if not under(request):
            return await http_exception_handler(request, exc)
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return error_response(beacon_id(request), exc.status_code, message, exc.headers)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if not under(request):
            return await request_validation_exception_handler(request, exc)
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return error_response(beacon_id(request), 422, "; ".join(parts) or "invalid request")

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
