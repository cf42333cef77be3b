"""A free-text query's limits and normal form, without heavy imports: `dynplayer search` checks
every query of a file before it loads the text model."""

from __future__ import annotations

from dynplayer.errors import QueryError

MAX_QUERY_CHARS = 500  # the API's limit too


def check_query(text: str) -> str:
    """The normalised query text, or a QueryError naming what is wrong with it."""
    if not isinstance(text, str):
        raise QueryError("the query must be text")
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"query is {len(text):,} characters long; the limit is "
                         f"{MAX_QUERY_CHARS}")
    norm = " ".join(text.lower().split())
    if not norm:
        raise QueryError("the query is empty (nothing but whitespace)")
    return norm


__all__ = ["MAX_QUERY_CHARS", "check_query"]
