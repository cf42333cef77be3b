"""Every error as JSON `{"error", "message"}`: bad input 4xx, an unreachable database 503, a
bug 500 (logged)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dynplayer.errors import DynplayerError, QueryError, StoreError
from dynplayer.library.explore import TextModelMissing as LibraryTextMissing
from dynplayer.library.subsonic import SubsonicError
from dynplayer.serve.recommender import TextModelMissing, UnknownTrackError

log = logging.getLogger(__name__)


def _error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status,
                        headers=headers or None)


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def _required_fields(request: Request) -> list[str]:
    """The required fields of the route's JSON body, to name them when the body is missing."""
    field = getattr(request.scope.get("route"), "body_field", None)
    model = getattr(getattr(field, "field_info", None), "annotation", None)
    fields = getattr(model, "model_fields", {})
    return [name for name, f in fields.items() if f.is_required()]


def _kind(value: object) -> str:
    names = {list: "an array", str: "a string", int: "a number", float: "a number",
             bool: "true/false", bytes: "text that is not JSON", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _one(err: dict[str, Any], request: Request) -> str:
    """One validation error as 'where: what', naming the field (or the body) it is about."""
    loc = tuple(err.get("loc", ()))
    msg = str(err.get("msg", "invalid"))
    kind = err.get("type", "")
    if kind == "json_invalid":
        at = f" at character {loc[1]}" if len(loc) > 1 else ""
        why = (err.get("ctx") or {}).get("error", msg)
        return f"body: malformed JSON{at}: {why}"
    if loc == ("body",):
        if kind == "missing":
            need = ", ".join(f"'{f}'" for f in _required_fields(request))
            return ("body: missing; send a JSON object" +
                    (f" with the field(s) {need}" if need else ""))
        if kind in ("model_attributes_type", "dict_type", "model_type"):
            return f"body: expected a JSON object, got {_kind(err.get('input'))}"
        return f"body: {msg}"
    where, *rest = loc or ("request",)
    name = ".".join(str(x) for x in rest)
    if where == "body":
        return f"field '{name}': {msg}"
    if where in ("query", "path", "header") and name:
        return f"{where} parameter '{name}': {msg}"
    return f"{'.'.join(str(x) for x in loc)}: {msg}" if loc else msg


def _describe(exc: RequestValidationError, request: Request) -> str:
    return "; ".join(_one(dict(e), request) for e in exc.errors()[:5]) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        content_type = request.headers.get("content-type")
        body = [e for e in exc.errors() if tuple(e.get("loc", ()))[:1] == ("body",)]
        unread = any(isinstance(e.get("input"), bytes) and e.get("input") for e in body)
        if body and (content_type and not _is_json(content_type) or
                     not content_type and unread):
            got = f"Content-Type: {content_type}" if content_type else "no Content-Type"
            return _error(415, "unsupported_media_type",
                          f"body: expected JSON (Content-Type: application/json), got {got}; "
                          "with curl, add -H 'Content-Type: application/json'")
        return _error(422, "invalid_request", _describe(exc, request))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            # FastAPI's answer to a body that is not UTF-8 (json.loads cannot even start)
            content_type = request.headers.get("content-type") or ""
            if content_type and not _is_json(content_type):
                return _error(415, "unsupported_media_type",
                              f"body: expected JSON (Content-Type: application/json), got "
                              f"Content-Type: {content_type}")
            return _error(422, "invalid_request", "body: malformed JSON: not valid UTF-8 text")
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

    @app.exception_handler(SubsonicError)
    async def subsonic(_: Request, exc: SubsonicError) -> JSONResponse:
        return _error(502, "subsonic_unavailable", str(exc))

    @app.exception_handler(LibraryTextMissing)
    async def no_text_library(_: Request, exc: LibraryTextMissing) -> JSONResponse:
        return _error(503, "text_model_missing", str(exc))

    @app.exception_handler(DynplayerError)
    async def other(_: Request, exc: DynplayerError) -> JSONResponse:
        return _error(422, "invalid_request", str(exc))

    @app.exception_handler(Exception)
    async def bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return _error(500, "internal_error", "internal error (a bug; see the server log)")
