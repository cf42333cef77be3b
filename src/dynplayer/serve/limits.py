"""What one request may ask for, on every entry point (the API, the CLI, the Python API), and the
checks of it: a module without heavy imports, so a command refuses a bad argument before it
loads anything."""

from __future__ import annotations

from dynplayer.errors import QueryError

K_MAX = 500  # tracks one answer may hold (the challenge's list length)
TEXT_MAX = 500  # characters of a free-text query
SEEDS_MAX = 500  # seed tracks of a continuation
QUERY_MAX = 200  # characters of an autocomplete query


def check_k(k: int) -> int:
    """`k` when it is an integer from 1 to K_MAX; else a QueryError saying so."""
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= K_MAX:
        raise QueryError(f"k must be an integer from 1 to {K_MAX}, got {k!r}")
    return k


__all__ = ["K_MAX", "QUERY_MAX", "SEEDS_MAX", "TEXT_MAX", "check_k"]
