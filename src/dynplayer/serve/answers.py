"""What the recommenders answer and what a request may ask: the answer types, the input checks
shared by every backend, and the errors a request can meet (`dynplayer.serve.recommender`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from dynplayer.diversity import diversify
from dynplayer.errors import DynplayerError, QueryError, StoreError
from dynplayer.serve.limits import (
    K_MAX,
    QUERY_MAX,
    SEEDS_MAX,
    TEXT_MAX,
    check_k,
    check_name,
    check_seeds,
    check_text,
)
from dynplayer.text.api import PlaylistHit, TextSearcherProtocol


class ContinuationRanker(Protocol):
    """A second stage for continuations (`dynplayer.rank.serving.ServingRanker`)."""

    def known(self, track_id: str) -> bool: ...

    def rank(self, seeds: list[str], k: int, name: str | None = None
             ) -> list[tuple[str, float]]:
        """The k best next tracks (ids, scores) for known seeds in playlist order; `name`,
        the playlist's, is evidence the ranker may read."""
        ...


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
    # how it was answered: "two-stage", "embedding", or "text" (a name and no known seed)
    method: str = "embedding"


def text_playlists_of(searcher: TextSearcherProtocol | None, default: int = 50) -> int:
    """How many playlists the text model aggregates (its `cfg.top_playlists`), else `default`."""
    return int(getattr(getattr(searcher, "cfg", None), "top_playlists", default))


def varied(tracks: list[TrackResult], n: int, k: int) -> list[TrackResult]:
    """The first k of a ranked pool with at most n per artist (`dynplayer.diversity`)."""
    if n <= 0:  # no cap (the text answer's default): nothing to look up
        return tracks[:k]
    return [tracks[i] for i in diversify([t.artist for t in tracks], n, k)]


def unknown_error(seeds: list[str], single: bool) -> UnknownTrackError:
    if single:
        return UnknownTrackError(f"unknown track id {seeds[0]!r}")
    shown = ", ".join(repr(s) for s in seeds[:5]) + (" ..." if len(seeds) > 5 else "")
    return UnknownTrackError(f"none of the {len(seeds)} seed track ids is known: {shown}")


__all__ = ["K_MAX", "QUERY_MAX", "SEEDS_MAX", "TEXT_MAX", "Continuation", "DatabaseUnavailable",
           "TextAnswer", "TextModelMissing", "TrackInfo", "TrackResult", "UnknownTrackError",
           "check_k", "check_name", "check_seeds", "check_text",
           "text_playlists_of", "unknown_error", "varied"]
