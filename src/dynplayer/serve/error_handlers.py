"""Every error as JSON `{"error", "message"}`: bad input 4xx, an unreachable database 503, a
bug 500 (logged)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dynplayer.errors import DynplayerError, QueryError, StoreError
from dynplayer.serve.recommender import TextModelMissing, UnknownTrackError

log = logging.getLogger(__name__)


def _error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status,
                        headers=headers or None)


def _describe(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body",))
        parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "invalid_request", _describe(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed"}
        return _error(exc.status_code, codes.get(exc.status_code, "http_error"),
                      str(exc.detail), **(exc.headers or {}))

    @app.exception_handler(UnknownTrackError)
    async def unknown(_: Request, exc: UnknownTrackError) -> JSONResponse:
        return _error(404, "unknown_track", str(exc))

    @app.exception_handler(QueryError)
    async def bad_query(_: Request, exc: QueryError) -> JSONResponse:
        return _error(422, "invalid_query", str(exc))

    @app.exception_handler(TextModelMissing)
    async def no_text(_: Request, exc: TextModelMissing) -> JSONResponse:
        return _error(503, "text_model_missing", str(exc))

    @app.exception_handler(StoreError)
    async def store(_: Request, exc: StoreError) -> JSONResponse:
        return _error(503, "database_unavailable", str(exc), **{"Retry-After": "1"})

    @app.exception_handler(DynplayerError)
    async def other(_: Request, exc: DynplayerError) -> JSONResponse:
        return _error(422, "invalid_request", str(exc))

    @app.exception_handler(Exception)
    async def bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return _error(500, "internal_error", "internal error (a bug; see the server log)")
