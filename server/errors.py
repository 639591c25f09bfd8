"""How errors become responses: JSON ``{"detail": "..."}`` naming the bad value, never a traceback."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from server.store import QueueFull, StoreError

log = logging.getLogger("spinr.server")


def field_message(err: Any) -> str:
    """One of pydantic's validation errors as ``field: what is wrong (got value)``."""
    loc = [str(x) for x in err.get("loc", ()) if x not in ("body", "query", "path", "form")]
    name = ".".join(loc) or "request"
    text = f"{name}: {err.get('msg', 'invalid')}"
    if "input" in err and err["input"] is not None and err.get("type") != "missing":
        text += f" (got {err['input']!r})"
    return text


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": "; ".join(field_message(e) for e in exc.errors())}, status_code=422)


async def _queue_full(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, QueueFull)
    return JSONResponse({"detail": str(exc)}, status_code=429, headers={"Retry-After": str(exc.retry_after)})


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("store error", extra={"path": request.url.path, "reason": str(exc)})
    return JSONResponse({"detail": str(exc)}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(QueueFull, _queue_full)
    app.add_exception_handler(StoreError, _store_error)
