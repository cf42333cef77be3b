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

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from dynplayer.serve.error_handlers import install_error_handlers
from dynplayer.serve.recommender import Recommender
from dynplayer.serve.routes import admin, health, recommend, tracks
from dynplayer.serve.service import SearcherFactory, Service
from dynplayer.serve.workers import exit_with_supervisor
from dynplayer.settings import Settings

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"


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
        exit_with_supervisor()
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
    install_error_handlers(app)
    for router in (recommend, tracks, health, admin):
        app.include_router(router)
    # The page lives under /ui/ (relative links), so a mount never shadows an API route.
    app.mount("/ui", StaticFiles(directory=STATIC_DIR, html=True), name="ui")

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("/ui/")

    return app
