"""The FastAPI service: `create_app(settings)`; routers for recommendations, tracks, health, admin.

The lifespan hook loads the model once (the run's text searcher, and either the in-memory exact
recommender or a pool on the pgvector store). Every error is JSON `{"error", "message"}`: bad
input gets 4xx, an unreachable database 503, and only a bug 500. Schemas live in `schemas`,
the model's lifecycle in `service`, the routes in `routes`, the error mapping in
`error_handlers`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from threadpoolctl import ThreadpoolController

from dynplayer.errors import ConfigError
from dynplayer.serve.catalogs import router as catalogs_router
from dynplayer.serve.error_handlers import install_error_handlers
from dynplayer.serve.library_routes import router as library_router
from dynplayer.serve.recommender import Recommender
from dynplayer.serve.routes import admin, health, playlists, recommend, tracks
from dynplayer.serve.service import SearcherFactory, Service
from dynplayer.serve.workers import exit_with_supervisor
from dynplayer.settings import Settings

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
FAVICON = Path(__file__).parent / "favicon.png"


def create_app(settings: Settings | None = None, *, recommender: Recommender | None = None,
               searcher_factory: SearcherFactory | None = None) -> FastAPI:
    """The service. With `recommender` given, nothing is loaded at startup; `searcher_factory`
    replaces `TextSearcher.load` (RUN_DIR -> searcher or None) for loads and reloads.

    One `Service` per served catalog (`Settings.served_catalogs`, the default first), each with
    its own pool and model follower, on one database."""
    settings = settings or Settings()
    # One BLAS thread in the serving process: requests run side by side in the thread pool and
    # each one's products are small. With numpy's default (a thread per core) the idle BLAS
    # threads spin while a request holds its thread, which costs more the longer it runs: 8
    # clients at k=50 burned 2x the CPU of k=20 (docs/benchmarks.md, bench serve). Set here,
    # in the thread that builds the app (uvicorn's main thread): OpenBLAS ignores a later
    # setting from another thread once the main thread has made one. DYNPLAYER_BLAS_THREADS=0
    # keeps numpy's default (what bench serve measures the difference with).
    if settings.blas_threads > 0:
        ThreadpoolController().limit(limits=settings.blas_threads, user_api="blas")
    services = make_services(settings, recommender, searcher_factory)
    service = next(iter(services.values()))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(build_services, services, only_missing=True)
        for s in services.values():
            s.start_watching()
        exit_with_supervisor()
        try:
            yield
        finally:
            # The default service last: it stops the embedded server it may have started.
            for s in reversed(services.values()):
                await run_in_threadpool(s.close)

    # /docs (Swagger UI) and /redoc with their scripts and styles served from the installed
    # fastapi-offline package, not a CDN: they were blank pages without internet.
    app = FastAPIOffline(title="Dynplayer", version="1", lifespan=lifespan,
                         favicon_url="/favicon.png",
                         description="Music recommendations learned from playlists: free text, "
                                     "playlist continuation, similar tracks.")
    app.state.service = service  # the default catalog's
    app.state.services = services  # name -> Service, the default first
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type", "Authorization"])
    install_error_handlers(app)
    for router in (recommend, tracks, playlists, catalogs_router, library_router, health, admin):
        app.include_router(router)
    # The page lives under /ui/ (relative links), so a mount never shadows an API route.
    app.mount("/ui", StaticFiles(directory=STATIC_DIR, html=True), name="ui")

    @app.get("/", include_in_schema=False)
    def index(request: Request) -> RedirectResponse:
        # The page's own parameters (?catalog=, ?api=) survive the redirect.
        query = request.url.query
        return RedirectResponse("/ui/" + (f"?{query}" if query else ""))

    @app.get("/favicon.ico", include_in_schema=False)
    @app.get("/favicon.png", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(FAVICON, media_type="image/png",
                            headers={"Cache-Control": "public, max-age=86400"})

    return app


def make_services(settings: Settings, recommender: Recommender | None = None,
                  searcher_factory: SearcherFactory | None = None) -> dict[str, Service]:
    """One Service per catalog to serve, keyed by name ("default" for the unnamed catalog)."""
    entries = settings.served_catalogs()
    services: dict[str, Service] = {}
    for i, (name, run_dir) in enumerate(entries):
        own = settings if not settings.catalogs else settings.model_copy(
            update={"run_dir": run_dir, "catalog": name, "catalogs": {}})
        label = name or "default"
        if label in services:
            raise ConfigError(f"catalog {label!r} is given twice")
        services[label] = Service(own, recommender if i == 0 else None, searcher_factory)
    return services


def build_services(services: dict[str, Service], *, only_missing: bool = False) -> dict[str, Any]:
    """Load (and index when needed) every catalog, the default first; the others share its
    database (the embedded server it started, when no URL is configured). Returns each
    catalog's build detail."""
    first = next(iter(services.values()))
    details: dict[str, Any] = {}
    for name, s in services.items():
        if s is not first and s.settings.backend == "pgvector" and s.url is None:
            s.url = first.database_url()
        if not (only_missing and s.recommender is not None):
            details[name] = s.build()
    return details
