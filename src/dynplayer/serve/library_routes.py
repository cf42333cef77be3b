"""`/v1/library/...`: answers restricted to a listener's library stored with the served run
(`dynplayer library import`), and writing one back to its Subsonic server (admin token).

Each library is loaded once per served model (`library.answers.LibraryModel`, exact, in
memory), with the served text searcher and second stage, and loaded again when its files or
the model change. Credentials for writing come from the API process's environment
(DYNPLAYER_SUBSONIC_USER / _PASSWORD or _API_KEY), never from a request."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException

from dynplayer.errors import ArtifactError
from dynplayer.serve.routes import ERRORS, AdminDep, RecommenderDep, ServiceDep
from dynplayer.serve.schemas import CleanText

router = APIRouter(prefix="/v1/library", tags=["library"], responses=ERRORS)
_lock = threading.Lock()
Name = Annotated[str, StringConstraints(min_length=1, max_length=64),
                 Field(description="the library's name (`dynplayer library import --name`)")]
Seed = Annotated[CleanText, StringConstraints(min_length=1, max_length=300)]
LibK = Annotated[int, Field(ge=1, le=200, description="tracks in the answer")]
PerArtist = Annotated[int, Field(ge=0, le=200, description="at most this many per artist "
                                 "(0: no cap)")]


class MixRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    library: Name = "default"
    seeds: Annotated[list[Seed], Field(min_length=1, max_length=100, description=(
        "library ids or names: a track (\"artist - title\" or a title), an album, an artist"))]
    k: LibK = 20
    per_artist: PerArtist = 2


class LibrarySearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    library: Name = "default"
    text: Annotated[CleanText, StringConstraints(min_length=1, max_length=500)]
    k: LibK = 20
    per_artist: PerArtist = 3


class LibraryContinueRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    library: Name = "default"
    playlist: Annotated[CleanText, StringConstraints(min_length=1, max_length=300),
                        Field(description="one of the listener's playlists: its id or name")]
    k: LibK = 20
    per_artist: PerArtist = 0


class PlaylistRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    library: Name = "default"
    name: Annotated[CleanText, StringConstraints(min_length=1, max_length=200),
                    Field(description="saved as 'Dynplayer: NAME'")]
    tracks: Annotated[list[Seed], Field(min_length=1, max_length=1000,
                                        description="library ids (the server's song ids)")]
    dry_run: bool = False


class LibraryItem(BaseModel):
    id: str
    title: str | None
    artist: str | None
    album: str | None = None
    track_id: str | None = None
    score: float | None = None


class LibraryAnswerResponse(BaseModel):
    library: str
    model_version: str
    tracks: list[str] = Field(description="library ids (discover: catalogue ids), best first")
    because: list[dict[str, Any]] = Field(description="one per track: why, playlists, seeds")
    items: list[LibraryItem]
    seeds: list[str]
    resolved: list[str]
    method: str
    searched_as: str | None = None


class LibraryOut(BaseModel):
    name: str
    tracks: int
    counts: dict[str, Any]
    source: dict[str, Any]
    playlists: list[dict[str, Any]]
    imported_at: str | None


class LibrariesResponse(BaseModel):
    libraries: list[LibraryOut]


def _model(service: Any, rec: Any, name: str) -> Any:
    """The LibraryModel of `name`, cached on the service per model version and library
    files."""
    from dynplayer.library.answers import LibraryModel
    from dynplayer.library.store import library_dir, load_library
    from dynplayer.run import load_run

    run_dir = service.run_dir()
    d = library_dir(run_dir, name)
    stamp = (rec.version, (d / "tracks.jsonl").stat().st_mtime_ns
             if (d / "tracks.jsonl").exists() else 0)
    cache: dict[str, tuple[Any, Any]] = service.__dict__.setdefault("library_models", {})
    with _lock:
        hit = cache.get(name)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        try:
            lib = load_library(run_dir, name)
        except ArtifactError as exc:
            raise StarletteHTTPException(404, str(exc)) from None
        run = getattr(service, "library_run", None)
        corpus = getattr(service, "library_corpus", None)
        if run is None or getattr(service, "library_run_version", None) != rec.version:
            from dynplayer.data.corpus import load_corpus

            run = load_run(Path(run_dir))
            corpus = load_corpus(run.corpus_dir)
            service.library_run, service.library_corpus = run, corpus
            service.library_run_version = rec.version
        stage = getattr(rec.reranker, "stage", None)
        assert corpus is not None
        model = LibraryModel(run, corpus, lib, searcher=rec.searcher, stage=stage)
        cache[name] = (stamp, model)
        return model


def _answer(name: str, rec: Any, model: Any, answer: Any) -> LibraryAnswerResponse:
    items = []
    for tid, score, b in zip(answer.tracks, answer.scores, answer.because, strict=True):
        if answer.kind == "discover":
            items.append(LibraryItem(id=tid, title=b.get("name"), artist=b.get("artist"),
                                     track_id=tid, score=score))
            continue
        i = model.id_index[tid]
        t, m = model.library.tracks[i], model.library.matches[i]
        items.append(LibraryItem(id=tid, title=t.title, artist=t.artist, album=t.album,
                                 track_id=m.track_id, score=score))
    d = answer.as_dict()
    return LibraryAnswerResponse(library=name, model_version=rec.version, tracks=d["tracks"],
                                 because=d["because"], items=items, seeds=d["seeds"],
                                 resolved=d["resolved"], method=d["method"],
                                 searched_as=d["searched_as"])


@router.get("", response_model=LibrariesResponse)
def libraries(service: ServiceDep) -> LibrariesResponse:
    """The libraries stored with the served run, with their match counts and playlists."""
    from dynplayer.library.store import list_libraries, load_library

    out = []
    for name in list_libraries(service.run_dir()):
        lib = load_library(service.run_dir(), name)
        m = lib.manifest
        out.append(LibraryOut(name=name, tracks=len(lib.tracks), counts=m.get("counts", {}),
                              source={k: v for k, v in m.get("source", {}).items()
                                      if k in ("kind", "location", "api_version")},
                              playlists=[{"id": p.id, "name": p.name, "tracks": len(p.tracks)}
                                         for p in lib.playlists],
                              imported_at=m.get("imported_at")))
    return LibrariesResponse(libraries=out)


@router.get("/{name}/tracks", response_model=list[LibraryItem])
def library_tracks(name: str, service: ServiceDep, rec: RecommenderDep,
                   q: Annotated[str, Query(min_length=1, max_length=200)],
                   limit: Annotated[int, Query(ge=1, le=50)] = 10) -> list[LibraryItem]:
    """Library tracks whose title, artist or album holds `q` (accents and case folded)."""
    from dynplayer.names import fold

    model = _model(service, rec, name)
    key = fold(q)
    out = []
    for t, m in zip(model.library.tracks, model.library.matches, strict=True):
        if key and key in fold(f"{t.title} {t.artist} {t.album or ''}"):
            out.append(LibraryItem(id=t.id, title=t.title, artist=t.artist, album=t.album,
                                   track_id=m.track_id))
            if len(out) == limit:
                break
    return out


@router.post("/mix", response_model=LibraryAnswerResponse)
def library_mix(body: MixRequest, service: ServiceDep, rec: RecommenderDep
                ) -> LibraryAnswerResponse:
    """An instant mix from library tracks, albums or artists (no repeats, capped per
    artist), each track with its "because"."""
    model = _model(service, rec, body.library)
    return _answer(body.library, rec, model, model.mix(body.seeds, body.k, body.per_artist))


@router.post("/search", response_model=LibraryAnswerResponse)
def library_search(body: LibrarySearchRequest, service: ServiceDep, rec: RecommenderDep
                   ) -> LibraryAnswerResponse:
    """Free text -> a playlist from the library, with the playlists behind each track."""
    from dynplayer.library.explore import search

    model = _model(service, rec, body.library)
    return _answer(body.library, rec, model, search(model, body.text, body.k, body.per_artist))


@router.post("/continue", response_model=LibraryAnswerResponse)
def library_continue(body: LibraryContinueRequest, service: ServiceDep, rec: RecommenderDep
                     ) -> LibraryAnswerResponse:
    """Continue one of the listener's playlists from the library."""
    model = _model(service, rec, body.library)
    return _answer(body.library, rec, model,
                   model.continue_playlist(body.playlist, body.k, body.per_artist))


@router.post("/discover", response_model=LibraryAnswerResponse)
def library_discover(body: MixRequest, service: ServiceDep, rec: RecommenderDep
                     ) -> LibraryAnswerResponse:
    """Catalogue tracks the library lacks that fit a mix of the seeds, with the playlists
    behind them (`tracks` and `items[].id` are catalogue ids)."""
    from dynplayer.library.explore import discover

    model = _model(service, rec, body.library)
    return _answer(body.library, rec, model,
                   discover(model, body.seeds, body.k, body.per_artist))


@router.post("/playlist")
def library_playlist(body: PlaylistRequest, service: ServiceDep, rec: RecommenderDep,
                     _: AdminDep) -> dict[str, Any]:
    """Create or update the playlist 'Dynplayer: NAME' on the library's server (admin token;
    credentials from the API process's environment); `dry_run` shows the change only."""
    from dynplayer.library.writeback import save_playlist

    model = _model(service, rec, body.library)
    change = save_playlist(model.library, body.name, list(body.tracks), dry_run=body.dry_run)
    return {**change.as_dict(), "message": change.describe()}


__all__ = ["router"]
