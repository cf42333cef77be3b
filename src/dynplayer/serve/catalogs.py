"""The catalogs one API process serves (`GET /v1/catalogs`) and each catalog's track map
(`GET /v1/map`); every other route picks its catalog with `?catalog=NAME` (routes.get_service)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from dynplayer.serve.recommender import ExactRecommender
from dynplayer.serve.routes import ERRORS, RecommenderDep
from dynplayer.serve.service import Service
from dynplayer.serve.trackmap import map_points
from dynplayer.store.trackmap import MAP_TRACKS, MAP_TRACKS_MAX


class CatalogOut(BaseModel):
    name: str  # "default" for the unnamed catalog (a run served without a name)
    default: bool  # answers requests that name no catalog
    run_dir: str | None
    model_version: str | None  # None while not loaded
    backend: str
    ready: bool  # loaded, and the database holds this catalog's model
    text_model: bool
    tracks: int | None  # tracks in the model (None while not loaded)
    detail: str | None = None  # why it does not answer, when it does not


class CatalogsResponse(BaseModel):
    default: str
    catalogs: list[CatalogOut]


class MapPointOut(BaseModel):
    track_id: str
    name: str | None
    artist: str | None
    genre: str | None
    x: float = Field(description="0..1, left to right")
    y: float = Field(description="0..1, bottom to top (same scale as x)")


class MapResponse(BaseModel):
    model_version: str
    points: list[MapPointOut]


router = APIRouter(tags=["catalogs"], responses=ERRORS)


def _describe(name: str, service: Service, default: bool) -> CatalogOut:
    rec = service.recommender
    tracks = None
    if isinstance(rec, ExactRecommender):
        tracks = len(rec.catalog.track_ids)
    elif rec is not None:
        tracks = service.n_tracks
    run_dir = service.settings.run_dir
    return CatalogOut(name=name, default=default, run_dir=None if run_dir is None else str(run_dir),
                      model_version=None if rec is None else rec.version,
                      backend=service.settings.backend,
                      ready=rec is not None and service.stale is None,
                      text_model=rec is not None and rec.has_text, tracks=tracks,
                      detail=service.stale)


@router.get("/v1/catalogs", response_model=CatalogsResponse)
def catalogs(request: Request) -> CatalogsResponse:
    """The catalogs this process serves, the default (first) one first; name one in any other
    route's `catalog` query parameter."""
    services: dict[str, Service] = request.app.state.services
    first = next(iter(services))
    return CatalogsResponse(default=first, catalogs=[
        _describe(name, s, name == first) for name, s in services.items()])


@router.get("/v1/map", response_model=MapResponse)
def track_map(
    rec: RecommenderDep,
    limit: Annotated[int, Query(ge=1, le=MAP_TRACKS_MAX,
                                description="most popular tracks to return")] = MAP_TRACKS,
) -> MapResponse:
    """The map of the track space: the most popular tracks placed in 2-D (PCA, then a
    neighbour layout of their vectors, computed when the catalog was indexed or loaded), so
    that tracks sharing playlists lie close; `genre` colours them where the data has labels."""
    points = map_points(rec, limit)
    return MapResponse(model_version=rec.version, points=[
        MapPointOut(track_id=p.track_id, name=p.name, artist=p.artist, genre=p.genre,
                    x=p.x, y=p.y) for p in points])
