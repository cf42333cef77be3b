"""The FastAPI service: `create_app(settings)`; routers for recommendations, tracks, health, admin.

The lifespan hook loads the model once (the run's text searcher, and either the in-memory exact
recommender or a pool on the pgvector store). Every error is JSON `{"error", "message"}`: bad
input gets 4xx, an unreachable database 503, and only a bug 500.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from dynplayer.errors import ArtifactError, DynplayerError, QueryError, StoreError
from dynplayer.serve.recommender import (
    K_MAX,
    QUERY_MAX,
    SEEDS_MAX,
    TEXT_MAX,
    DatabaseUnavailable,
    ExactRecommender,
    PgvectorRecommender,
    Recommender,
    TextModelMissing,
    TrackResult,
    UnknownTrackError,
    text_playlists_of,
)
from dynplayer.settings import Settings
from dynplayer.text.api import TextSearcherProtocol

log = logging.getLogger(__name__)
SearcherFactory = Callable[[Path], TextSearcherProtocol | None]
STATIC_DIR = Path(__file__).parent / "static"


# ---- request and response models --------------------------------------------------------


def _clean(value: str) -> str:
    """Reject what no track id or query can contain and PostgreSQL cannot store."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text") from exc
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


CleanText = Annotated[str, AfterValidator(_clean)]
TrackId = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_clean)]
K = Annotated[int, Field(ge=1, le=K_MAX, description=f"number of tracks, 1..{K_MAX}")]


class TextRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Annotated[str, StringConstraints(min_length=1, max_length=TEXT_MAX),
                    AfterValidator(_clean), AfterValidator(_not_blank),
                    Field(examples=["rainy day jazz", "신나는 여름 노래"])]
    k: K = 20


class ContinueRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    track_ids: Annotated[list[TrackId], Field(min_length=1, max_length=SEEDS_MAX)]
    k: K = 20


class PlaylistOut(BaseModel):
    pid: str
    caption: str
    similarity: float


class TrackOut(BaseModel):
    track_id: str
    name: str | None
    artist: str | None
    score: float
    because: list[PlaylistOut] = Field(default_factory=list)


class TrackInfoOut(BaseModel):
    track_id: str
    name: str | None
    artist: str | None


class TextResponse(BaseModel):
    text: str
    model_version: str
    tracks: list[TrackOut]


class ContinueResponse(BaseModel):
    model_version: str
    seeds: list[str]
    unknown_track_ids: list[str]
    tracks: list[TrackOut]


class SimilarResponse(BaseModel):
    track_id: str
    model_version: str
    tracks: list[TrackOut]


class SearchResponse(BaseModel):
    q: str
    tracks: list[TrackInfoOut]


class HealthResponse(BaseModel):
    status: str


class ReadyResponse(BaseModel):
    ready: bool
    model_loaded: bool
    database: str  # "ok", "unreachable" or "not used" (exact backend)
    model_version: str | None
    backend: str
    text_model: bool
    # Why this process does not answer (it serves another model than the database holds).
    detail: str | None = None


class AdminResponse(BaseModel):
    model_version: str
    detail: dict[str, Any] = Field(default_factory=dict)


class ErrorResponse(BaseModel):
    error: str
    message: str


def _tracks_out(tracks: list[TrackResult], because_limit: int = 10) -> list[TrackOut]:
    return [TrackOut(track_id=t.track_id, name=t.name, artist=t.artist, score=t.score,
                     because=[PlaylistOut(pid=b.pid, caption=b.caption,
                                          similarity=float(b.similarity))
                              for b in t.because[:because_limit]])
            for t in tracks]


# ---- service state ---------------------------------------------------------------------


class Service:
    """The loaded model and its resources; `reload` swaps the recommender atomically.

    With the pgvector backend the service also follows the database (`follow_database`, every
    DYNPLAYER_VERSION_POLL seconds from a background thread): when another process (a second
    worker, another API server, `dynplayer index`) has swapped in another model version, this
    process reloads itself if its run directory now holds that version, and otherwise stops
    answering (503, saying why) until the database holds its version again, so it never
    mixes its in-memory model with another model's tables.
    """

    def __init__(self, settings: Settings, recommender: Recommender | None = None,
                 searcher_factory: SearcherFactory | None = None) -> None:
        self.settings = settings
        self.recommender = recommender
        self.searcher_factory = searcher_factory
        self.server: Any = None  # EmbeddedServer started by this service
        self.pool: Any = None
        self.url: str | None = settings.database_url
        self._lock = threading.Lock()
        self.stale: str | None = None  # why this process must not answer from its model
        self._stale_seen: tuple[str, tuple[tuple[str, int, int], ...]] | None = None
        self._stop_watch = threading.Event()
        self._watcher: threading.Thread | None = None

    def database_url(self) -> str:
        if self.url is None:
            from dynplayer.store.embedded import EmbeddedServer, default_pgdata

            self.server = EmbeddedServer(default_pgdata(self.settings.resolved_data_dir()))
            self.url = self.server.start()
        return self.url

    def run_dir(self) -> Path:
        if self.settings.run_dir is None:
            raise ArtifactError("no run to serve: set DYNPLAYER_RUN_DIR (or `dynplayer serve "
                                "RUN_DIR`)")
        return Path(self.settings.run_dir)

    def build(self, *, reindex: bool = False, index: bool = True) -> dict[str, Any]:
        """Load the run (and index it when the database holds another version, unless
        `index` is false: then that is a StoreError)."""
        from dynplayer.store.catalog import build_catalog, load_searcher
        from dynplayer.store.db import (
            active_version,
            connect,
            index_catalog,
            open_pool,
            run_version,
        )

        s = self.settings
        run_dir = self.run_dir()
        searcher = (self.searcher_factory or load_searcher)(run_dir)
        if searcher is not None:
            searcher.encode_query("warm up")  # load the text encoder before the first request
        detail: dict[str, Any] = {}
        # How many playlists a text query aggregates: the setting when given, else the text
        # model's own (TextConfig.top_playlists), so serving answers as `dynplayer search` does.
        n_playlists = s.text_playlists if "text_playlists" in s.model_fields_set else \
            text_playlists_of(searcher, s.text_playlists)
        if s.backend == "exact":
            rec: Recommender = ExactRecommender(build_catalog(run_dir, searcher), searcher,
                                                text_playlists=n_playlists)
        else:
            url = self.database_url()
            version = run_version(run_dir)
            with connect(url) as conn:
                current = active_version(conn)
            if reindex or current != version:
                if current != version and not (reindex or (s.auto_index and index)):
                    raise StoreError(f"the database holds model {current}, not {version}; run "
                                     f"`dynplayer index {run_dir}`")
                report = index_catalog(url, build_catalog(run_dir, searcher), m=s.hnsw_m,
                                       ef_construction=s.hnsw_ef_construction)
                detail["indexed"] = {"tracks": report.tracks, "playlists": report.playlists,
                                     "seconds": report.seconds}
            if self.pool is None:
                self.pool = open_pool(url, min_size=s.pool_min_size, max_size=s.pool_max_size,
                                      timeout=s.pool_timeout,
                                      statement_timeout_ms=s.statement_timeout_ms)
            rec = PgvectorRecommender(self.pool, version, searcher,
                                      text_playlists=n_playlists,
                                      ef_search_min=s.ef_search_min,
                                      ef_search_factor=s.ef_search_factor)
        self.recommender = rec
        self.stale = None
        return detail

    def reload(self, *, reindex: bool = False) -> dict[str, Any]:
        with self._lock:
            return self.build(reindex=reindex)

    def follow_database(self) -> str | None:
        """Compare the model this process serves with the one the database holds, and act:
        the same -> nothing; another version that this process's run directory now holds (the
        run was retrained and another process indexed it) -> reload, without indexing; another
        run's version -> stop answering until the database holds this process's version
        again. Returns what was done ("reloaded", "stale") or None."""
        from dynplayer.store.db import active_version, run_version

        rec, pool = self.recommender, self.pool
        if rec is None or pool is None or isinstance(rec, ExactRecommender):
            return None
        with pool.connection(timeout=self.settings.pool_timeout) as conn:
            held = active_version(conn)
        if held is None or held == rec.version:
            self.stale = None
            return None
        with self._lock:
            if self.recommender is not rec:  # reloaded meanwhile (an admin call)
                return None
            run_dir = self.run_dir()
            # Hashing the run costs a fraction of a second: while stale, only again once the
            # database or the run's files have changed.
            seen = (held, _files_signature(run_dir))
            if self.stale is not None and seen == self._stale_seen:
                return "stale"
            try:
                on_disk: str | None = run_version(run_dir)
            except Exception as exc:  # noqa: BLE001 (unreadable, or being rewritten right now)
                log.warning("cannot read the run %s: %s", run_dir, exc)
                on_disk = None
            if on_disk == held:
                self.build(index=False)
                return "reloaded"
            self._stale_seen = seen
            self.stale = (f"the database now holds model {held}, indexed from another run; "
                          f"this process serves model {rec.version} from {run_dir} (reload or "
                          "restart it to serve the database's model)")
            return "stale"

    def start_watching(self) -> None:
        """Run `follow_database` every DYNPLAYER_VERSION_POLL seconds (pgvector backend, > 0)."""
        poll = self.settings.version_poll
        if poll <= 0 or self.settings.backend != "pgvector" or self._watcher is not None:
            return
        self._stop_watch.clear()
        self._watcher = threading.Thread(target=self._watch, args=(poll,), daemon=True,
                                         name="dynplayer-version-watch")
        self._watcher.start()

    def _watch(self, poll: float) -> None:
        while not self._stop_watch.wait(poll):
            try:
                self.follow_database()
            except Exception as exc:  # noqa: BLE001 (the database may be down: try again later)
                log.debug("model version check failed: %s", exc)

    def stop_watching(self) -> None:
        self._stop_watch.set()
        if self._watcher is not None:
            self._watcher.join(timeout=10)
            self._watcher = None

    def close(self) -> None:
        """Release everything; a later startup (a new lifespan) builds again from settings."""
        self.stop_watching()
        if self.recommender is not None:
            self.recommender.close()
            self.recommender = None
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        if self.server is not None:
            self.server.stop()
            self.server = None
            self.url = self.settings.database_url


def _files_signature(run_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """(path, size, mtime) of the files of a run and its text model: changes when either is
    rewritten."""
    out = []
    for d in (run_dir, run_dir / "text"):
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            if e.is_file():
                st = e.stat()
                out.append((e.path, st.st_size, st.st_mtime_ns))
    return tuple(out)


def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def get_recommender(request: Request) -> Recommender:
    service = get_service(request)
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
    body_out = {"text": body.text, "model_version": rec.version, "tracks": [
        {"track_id": t.track_id, "name": t.name, "artist": t.artist, "score": float(t.score),
         "because": [{"pid": b.pid, "caption": b.caption, "similarity": float(b.similarity)}
                     for b in t.because[:limit]]}
        for t in rec.text(body.text, body.k)]}
    return Response(orjson.dumps(body_out), media_type="application/json")


@recommend.post("/continue", response_model=ContinueResponse)
def recommend_continue(body: ContinueRequest, rec: RecommenderDep) -> ContinueResponse:
    """Next tracks for a partial playlist; unknown seed ids are reported, not fatal."""
    result = rec.continue_playlist(body.track_ids, body.k)
    return ContinueResponse(model_version=rec.version, seeds=result.seeds,
                            unknown_track_ids=result.unknown, tracks=_tracks_out(result.tracks))


@tracks.get("/search", response_model=SearchResponse)
def search_tracks(
    rec: RecommenderDep,
    q: Annotated[str, Query(min_length=1, max_length=QUERY_MAX,
                            description="part of a track name or artist"),
                 AfterValidator(_clean), AfterValidator(_not_blank)],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> SearchResponse:
    """Tracks whose name or artist contains `q` (for autocomplete), most popular first."""
    found = rec.search_tracks(q, limit)
    return SearchResponse(q=q, tracks=[TrackInfoOut(track_id=t.track_id, name=t.name,
                                                    artist=t.artist) for t in found])


@tracks.get("/{track_id}/similar", response_model=SimilarResponse)
def similar_tracks(
    rec: RecommenderDep,
    track_id: Annotated[CleanText, PathParam(min_length=1, max_length=200)],
    k: Annotated[int, Query(ge=1, le=K_MAX)] = 20,
) -> SimilarResponse:
    """The k tracks nearest to a track."""
    return SimilarResponse(track_id=track_id, model_version=rec.version,
                           tracks=_tracks_out(rec.similar(track_id, k)))


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


# ---- errors --------------------------------------------------------------------------------


def _error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status,
                        headers=headers or None)


def _describe(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body",))
        parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def _install_error_handlers(app: FastAPI) -> None:
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


# ---- the app -------------------------------------------------------------------------------


SUPERVISOR_ENV = "DYNPLAYER_SUPERVISOR_PID"


def _exit_with_supervisor() -> None:
    """In a worker of `dynplayer serve --workers N` (which exports its pid as
    DYNPLAYER_SUPERVISOR_PID): stop gracefully (SIGTERM to itself) once that process is gone,
    so a supervisor killed with SIGKILL leaves no workers holding the port."""
    supervisor = os.environ.get(SUPERVISOR_ENV, "")
    if not supervisor.isdigit():
        return  # not one of its workers
    # A worker still starting when the supervisor died is orphaned already: it stops at once.

    def watch() -> None:
        while os.getppid() == int(supervisor):
            time.sleep(0.5)
        log.warning("the supervising `dynplayer serve` (pid %s) is gone; stopping", supervisor)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="dynplayer-supervisor-watch").start()


def create_app(settings: Settings | None = None, *, recommender: Recommender | None = None,
               searcher_factory: SearcherFactory | None = None) -> FastAPI:
    """The service. With `recommender` given, nothing is loaded at startup; `searcher_factory`
    replaces `TextSearcher.load` (RUN_DIR -> searcher or None) for loads and reloads."""
    settings = settings or Settings()
    service = Service(settings, recommender, searcher_factory)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if service.recommender is None:
            await run_in_threadpool(service.build)
        service.start_watching()
        _exit_with_supervisor()
        try:
            yield
        finally:
            await run_in_threadpool(service.close)

    app = FastAPI(title="Dynplayer", version="1", lifespan=lifespan,
                  description="Music recommendations learned from playlists: free text, "
                              "playlist continuation, similar tracks.")
    app.state.service = service
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type", "Authorization"])
    _install_error_handlers(app)
    for router in (recommend, tracks, health, admin):
        app.include_router(router)
    # The page lives under /ui/ (relative links), so a mount never shadows an API route.
    app.mount("/ui", StaticFiles(directory=STATIC_DIR, html=True), name="ui")

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("/ui/")

    return app
