"""What one request may ask for, on every entry point (the API, the CLI, the Python API), and the
checks of it: a module without heavy imports, so a command refuses a bad argument before it
loads anything."""

from __future__ import annotations

from collections.abc import Sequence

from dynplayer.errors import QueryError
from dynplayer.ids import normalize_track_id

K_MAX = 500  # tracks one answer may hold (the challenge's list length)
TEXT_MAX = 500  # characters of a free-text query
SEEDS_MAX = 500  # seed tracks of a continuation
QUERY_MAX = 200  # characters of an autocomplete query


def check_text(text: str) -> str:
    stripped = text.strip()
    if not stripped:
        raise QueryError("text is empty")
    if len(text) > TEXT_MAX:
        raise QueryError(f"text is {len(text)} characters long; at most {TEXT_MAX} are allowed")
    return stripped


def check_name(name: str | None) -> str | None:
    """A playlist's optional name, whitespace-normalised: 1..TEXT_MAX characters."""
    if name is None:
        return None
    norm = " ".join(str(name).split())
    if not norm:
        raise QueryError("name is empty; leave it out or give words")
    if len(norm) > TEXT_MAX:
        raise QueryError(f"name is {len(norm)} characters long; at most {TEXT_MAX} are allowed")
    return norm


def check_seeds(track_ids: Sequence[str]) -> list[str]:
    """The seed ids normalised (`spotify:track:ID` and links -> ID), deduplicated, in order."""
    if isinstance(track_ids, str):
        raise QueryError("track_ids must be a list of track ids, not one string")
    if not track_ids:
        raise QueryError("track_ids is empty; give at least one seed track")
    if len(track_ids) > SEEDS_MAX:
        raise QueryError(f"{len(track_ids)} seed tracks; at most {SEEDS_MAX} are allowed")
    return list(dict.fromkeys(normalize_track_id(t) for t in track_ids))


def check_k(k: int) -> int:
    """`k` when it is an integer from 1 to K_MAX; else a QueryError saying so."""
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= K_MAX:
        raise QueryError(f"k must be an integer from 1 to {K_MAX}, got {k!r}")
    return k


__all__ = ["K_MAX", "QUERY_MAX", "SEEDS_MAX", "TEXT_MAX", "check_k", "check_name", "check_seeds",
           "check_text"]
