"""What the recommenders answer and what a request may ask: the answer types, the input checks
shared by every backend, and the errors a request can meet (`dynplayer.serve.recommender`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from dynplayer.diversity import diversify
from dynplayer.errors import DynplayerError, QueryError, StoreError
from dynplayer.ids import normalize_track_id
from dynplayer.serve.batching import BatchingEncoder
from dynplayer.text.api import PlaylistHit, TextSearcherProtocol

K_MAX = 200
TEXT_MAX = 500
SEEDS_MAX = 500
QUERY_MAX = 200  # characters of an autocomplete query


class UnknownTrackError(QueryError):
    """The track id (or every seed id) is not in the served model."""


class TextModelMissing(DynplayerError):
    """The served run has no text model, so free-text queries cannot be answered."""


class DatabaseUnavailable(StoreError):
    """The database did not answer in time; the request may be retried later."""


@dataclass(frozen=True)
class TrackResult:
    track_id: str
    score: float
    name: str | None
    artist: str | None
    because: list[PlaylistHit] = field(default_factory=list)


@dataclass(frozen=True)
class TrackInfo:
    track_id: str
    name: str | None
    artist: str | None


@dataclass(frozen=True)
class TextAnswer:
    tracks: list[TrackResult]
    playlists: list[PlaylistHit]  # the playlists the tracks were aggregated from, best first
    searched_as: str | None = None  # the query with Korean loanwords bridged, when any were
    confidence: float | None = None  # calibrated on validation (`text.confidence`)
    match: str | None = None  # "close" | "weak" | "nothing" (None: the model is not calibrated)


@dataclass(frozen=True)
class Continuation:
    tracks: list[TrackResult]
    seeds: list[str]  # the known seed ids, in request order, deduplicated
    unknown: list[str]  # seed ids the model does not know, in request order


def text_playlists_of(searcher: TextSearcherProtocol | None, default: int = 50) -> int:
    """How many playlists the text model aggregates (its `cfg.top_playlists`), else `default`."""
    return int(getattr(getattr(searcher, "cfg", None), "top_playlists", default))


def query_encoder(searcher: TextSearcherProtocol) -> Callable[[str], np.ndarray]:
    """text -> query vector. Searchers that encode lists (`encode_queries`, as `TextSearcher`
    does) get a `BatchingEncoder`, so concurrent requests share one encoder call."""
    many = getattr(searcher, "encode_queries", None)
    if many is None:
        return searcher.encode_query
    from dynplayer.text.search import check_query

    batcher = BatchingEncoder(many)
    return lambda text: batcher.encode(check_query(text))


def check_k(k: int) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= K_MAX:
        raise QueryError(f"k must be an integer from 1 to {K_MAX}, got {k!r}")
    return k


def check_text(text: str) -> str:
    stripped = text.strip()
    if not stripped:
        raise QueryError("text is empty")
    if len(text) > TEXT_MAX:
        raise QueryError(f"text is {len(text)} characters long; at most {TEXT_MAX} are allowed")
    return stripped


def check_seeds(track_ids: Sequence[str]) -> list[str]:
    """The seed ids normalised (`spotify:track:ID` and links -> ID), deduplicated, in order."""
    if isinstance(track_ids, str):
        raise QueryError("track_ids must be a list of track ids, not one string")
    if not track_ids:
        raise QueryError("track_ids is empty; give at least one seed track")
    if len(track_ids) > SEEDS_MAX:
        raise QueryError(f"{len(track_ids)} seed tracks; at most {SEEDS_MAX} are allowed")
    return list(dict.fromkeys(normalize_track_id(t) for t in track_ids))


def varied(tracks: list[TrackResult], n: int, k: int) -> list[TrackResult]:
    """The first k of a ranked pool with at most n per artist (`dynplayer.diversity`)."""
    return [tracks[i] for i in diversify([t.artist for t in tracks], n, k)]


def unknown_error(seeds: list[str], single: bool) -> UnknownTrackError:
    if single:
        return UnknownTrackError(f"unknown track id {seeds[0]!r}")
    shown = ", ".join(repr(s) for s in seeds[:5]) + (" ..." if len(seeds) > 5 else "")
    return UnknownTrackError(f"none of the {len(seeds)} seed track ids is known: {shown}")
