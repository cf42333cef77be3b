"""The API's routers: recommendations, tracks, health and admin, with their dependencies."""

from __future__ import annotations

import re
import secrets
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from pydantic import AfterValidator
from starlette.exceptions import HTTPException as StarletteHTTPException

from dynplayer.diversity import MAX_PER_ARTIST_LIMIT
from dynplayer.errors import QueryError
from dynplayer.ids import normalize_track_id
from dynplayer.playlist_file import MEDIA_TYPES, Entry, render
from dynplayer.serve.limits import K_MAX, QUERY_MAX, SEEDS_MAX
from dynplayer.serve.recommender import (
    DatabaseUnavailable,
    ExactRecommender,
    Recommender,
)
from dynplayer.serve.schemas import (
    AdminResponse,
    CleanText,
    ContinueRequest,
    ContinueResponse,
    ErrorResponse,
    ExportRequest,
    HealthResponse,
    ReadyResponse,
    SearchResponse,
    SimilarResponse,
    TextRequest,
    TextResponse,
    TrackInfoOut,
    UpdateRequest,
    clean_text,
    not_blank,
    tracks_out,
)
from dynplayer.serve.service import Service
from dynplayer.serve.track_search import holds_words

CatalogQuery = Annotated[str | None, Query(
    max_length=64, description="the catalog to answer from (GET /v1/catalogs lists them); "
    "default: the first one served")]


async def get_service(request: Request, catalog: CatalogQuery = None) -> Service:
    """The service of the requested catalog (`?catalog=NAME`), else of the default one.
    `async` (it only reads attributes): FastAPI runs a plain `def` dependency in its thread
    pool, a thread hop per dependency per request."""
    if catalog is None:
        default: Service = request.app.state.service
        return default
    services: dict[str, Service] = getattr(request.app.state, "services", {})
    found = services.get(catalog)
    if found is None:
        raise StarletteHTTPException(404, f"unknown catalog {catalog!r}; this service serves: "
                                          f"{', '.join(services) or 'none'} (GET /v1/catalogs)")
    return found


async def get_recommender(service: Annotated[Service, Depends(get_service)]) -> Recommender:
    rec = service.recommender
    if rec is None:
        raise DatabaseUnavailable("the model is not loaded yet")
    if service.stale is not None:
        raise DatabaseUnavailable(service.stale)
    return rec


RecommenderDep = Annotated[Recommender, Depends(get_recommender)]
ServiceDep = Annotated[Service, Depends(get_service)]

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "unknown track"},
    422: {"model": ErrorResponse, "description": "invalid input"},
    503: {"model": ErrorResponse, "description": "database or model unavailable"},
}


# ---- routers -------------------------------------------------------------------------------

recommend = APIRouter(prefix="/v1/recommend", tags=["recommend"], responses=ERRORS)
tracks = APIRouter(prefix="/v1/tracks", tags=["tracks"], responses=ERRORS)
playlists = APIRouter(prefix="/v1/playlists", tags=["playlists"], responses=ERRORS)
health = APIRouter(tags=["health"])
admin = APIRouter(prefix="/v1/admin", tags=["admin"],
                  responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse},
                             **ERRORS})


@recommend.post("/text", response_model=TextResponse)
def recommend_text(body: TextRequest, rec: RecommenderDep, service: ServiceDep) -> Response:
    """Tracks for a free-text query, each with the playlists that contributed most ("because",
    best first, at most DYNPLAYER_BECAUSE_LIMIT of them)."""
    # The hot path: the body is written straight from the results (orjson), in the shape of
    # TextResponse, instead of building and re-validating ~200 pydantic objects (1.3 ms a
    # request). tests/test_api.py checks the body against TextResponse.
    limit = service.settings.because_limit
    answer = rec.text_answer(body.text, body.k, body.max_per_artist)
    body_out = {"text": body.text, "model_version": rec.version, "tracks": [
        {"track_id": t.track_id, "name": t.name, "artist": t.artist, "score": float(t.score),
         "because": [{"pid": b.pid, "caption": b.caption, "similarity": float(b.similarity)}
                     for b in t.because[:limit]]}
        for t in answer.tracks], "searched_as": answer.searched_as,
        "confidence": answer.confidence, "match": answer.match}
    return Response(orjson.dumps(body_out), media_type="application/json")


@recommend.post("/continue", response_model=ContinueResponse)
def recommend_continue(body: ContinueRequest, rec: RecommenderDep) -> ContinueResponse:
    """Next tracks for a partial playlist; unknown seed ids are reported, not fatal."""
    result = rec.continue_playlist(body.track_ids, body.k, name=body.name,
                                   max_per_artist=body.max_per_artist)
    return ContinueResponse(model_version=rec.version, seeds=result.seeds,
                            unknown_track_ids=result.unknown, tracks=tracks_out(result.tracks),
                            method=result.method)


@tracks.get("/search", response_model=SearchResponse)
def search_tracks(
    rec: RecommenderDep,
    q: Annotated[str, Query(min_length=1, max_length=QUERY_MAX,
                            description="part of a track name or artist"),
                 AfterValidator(clean_text), AfterValidator(not_blank)],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> SearchResponse:
    """Tracks whose name or artist holds `q` (for autocomplete; case, accents and word order
    do not matter), most popular first; when none does, the closest names (`near_misses`)."""
    found = rec.search_tracks(q, limit)
    return SearchResponse(q=q, tracks=[TrackInfoOut(track_id=t.track_id, name=t.name,
                                                    artist=t.artist) for t in found],
                          near_misses=bool(found) and not holds_words(q, found[0].name,
                                                                      found[0].artist))


@tracks.get("/lookup", response_model=SearchResponse)
def lookup_tracks(
    rec: RecommenderDep,
    ids: Annotated[str, Query(min_length=1, max_length=SEEDS_MAX * 201,
                              description="track ids (bare, spotify:track:ID or links), "
                                          "comma separated, at most 500"),
                   AfterValidator(clean_text)],
) -> SearchResponse:
    """Names and artists of the known tracks among `ids`, in the order given (what the web
    page shows for a search it reopens from its URL); unknown ids are left out."""
    wanted = [normalize_track_id(t) for t in ids.split(",") if t.strip()]
    if not wanted or len(wanted) > SEEDS_MAX:
        raise QueryError(f"ids must name 1 to {SEEDS_MAX} tracks, got {len(wanted)}")
    info = rec.track_info(wanted)
    return SearchResponse(q=ids, tracks=[TrackInfoOut(track_id=t, name=info[t].name,
                                                      artist=info[t].artist)
                                         for t in dict.fromkeys(wanted) if t in info])


# `:path`, so a URL-encoded track link (https%3A%2F%2Fopen.spotify.com%2Ftrack%2FID) works too
@tracks.get("/{track_id:path}/similar", response_model=SimilarResponse)
def similar_tracks(
    rec: RecommenderDep,
    track_id: Annotated[CleanText, PathParam(min_length=1, max_length=200)],
    k: Annotated[int, Query(ge=1, le=K_MAX)] = 20,
    max_per_artist: Annotated[int | None, Query(
        ge=0, le=MAX_PER_ARTIST_LIMIT, description="at most this many tracks per artist (0: "
        "no cap; unset: the default, chosen on validation)")] = None,
) -> SimilarResponse:
    """The k tracks nearest to a track: its id, `spotify:track:ID` or its open.spotify.com
    link (URL-encoded); `track_id` in the answer is the bare id."""
    tid = normalize_track_id(track_id)
    return SimilarResponse(track_id=tid, model_version=rec.version,
                           tracks=tracks_out(rec.similar(tid, k, max_per_artist)))


@playlists.post("/export", response_class=Response, responses={
    200: {"content": {t: {} for t in MEDIA_TYPES.values()},
          "description": "the playlist file (Content-Disposition: attachment)"}})
def export_playlist(body: ExportRequest, rec: RecommenderDep) -> Response:
    """A playlist (name, track ids in order) as an M3U, CSV or JSON file with Spotify URIs,
    names and artists from the catalog: what `--save FILE` writes on the command line. Ids the
    catalog does not know are kept, without a name."""
    info = rec.track_info(body.track_ids)
    entries = [Entry(tid, info[tid].name, info[tid].artist) if tid in info else Entry(tid)
               for tid in (normalize_track_id(t) for t in body.track_ids)]
    text = render(body.name, entries, body.format)
    stem = re.sub(r"[^\w.-]+", "-", body.name, flags=re.ASCII).strip("-.") or "playlist"
    return Response(text.encode("utf-8"), media_type=f"{MEDIA_TYPES[body.format]}; "
                    "charset=utf-8", headers={"Content-Disposition":
                                              f'attachment; filename="{stem}.{body.format}"'})


@health.get("/healthz", response_model=HealthResponse)
def healthz() -> HealthResponse:
    """The process is up."""
    return HealthResponse(status="ok")


@health.get("/readyz", response_model=ReadyResponse,
            responses={503: {"model": ReadyResponse, "description": "not ready"}})
def readyz(service: ServiceDep) -> JSONResponse:
    """Database reachable, model loaded, and which model version is served (not ready, with
    the reason in `detail`, while the database holds another run's model)."""
    rec = service.recommender
    backend = service.settings.backend if rec is None else (
        "exact" if isinstance(rec, ExactRecommender) else "pgvector")
    if rec is None:
        db = "unknown"
    elif isinstance(rec, ExactRecommender):
        db = "not used"
    else:
        db = "ok" if rec.ping() else "unreachable"
    stale = service.stale
    ready = rec is not None and db in ("ok", "not used") and stale is None
    body = ReadyResponse(ready=ready, model_loaded=rec is not None, database=db,
                         model_version=None if rec is None else rec.version, backend=backend,
                         text_model=rec is not None and rec.has_text, detail=stale)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


def _require_admin(service: ServiceDep,
                   authorization: Annotated[str | None, Header()] = None) -> None:
    token = service.settings.admin_token
    if not token:
        raise StarletteHTTPException(403, "admin operations are disabled (set "
                                          "DYNPLAYER_ADMIN_TOKEN)")
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not secrets.compare_digest(given.encode(), token.encode()):
        raise StarletteHTTPException(401, "a valid admin token is required "
                                          "(Authorization: Bearer <token>)")


AdminDep = Annotated[None, Depends(_require_admin)]


@admin.post("/reload", response_model=AdminResponse)
def admin_reload(service: ServiceDep, _: AdminDep) -> AdminResponse:
    """Reload the run from disk (indexing it when the database holds another version)."""
    detail = service.reload()
    assert service.recommender is not None
    return AdminResponse(model_version=service.recommender.version, detail=detail)


@admin.post("/reindex", response_model=AdminResponse)
def admin_reindex(service: ServiceDep, _: AdminDep) -> AdminResponse:
    """Rebuild the store's tables from the run and swap them in, then reload."""
    detail = service.reload(reindex=True)
    assert service.recommender is not None
    return AdminResponse(model_version=service.recommender.version, detail=detail)


@admin.post("/update", response_model=AdminResponse)
def admin_update(body: UpdateRequest, service: ServiceDep, _: AdminDep) -> AdminResponse:
    """Add new playlists to the served run without retraining (`dynplayer update`): the run
    directory and, with the pgvector backend, the live tables in one transaction; then reload.
    Other API processes on the database follow within their version poll."""
    detail = service.update(body.playlists, body.tracks, lenient=body.lenient)
    assert service.recommender is not None
    return AdminResponse(model_version=service.recommender.version, detail=detail)
