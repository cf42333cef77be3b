"""Track ids as users paste them: the one place a Spotify URI or link becomes a bare id.

Every entry point that takes a track id (the API, the CLI, the Python API, the input-file
readers) passes it through `normalize_track_id`, so `spotify:track:ID`,
`https://open.spotify.com/track/ID?si=...` and `ID` name the same track everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# spotify:track:ID (the MPD's track_uri) and open.spotify.com/track/ID links, with or without a
# scheme, a locale segment (/intl-de/) or a query string (?si=...); Spotify ids are base62.
_URI = re.compile(r"spotify:track:([0-9A-Za-z]+)")
_URL = re.compile(r"(?:https?://)?open\.spotify\.com/(?:intl-[\w-]+/)?(?:embed/)?track/"
                  r"([0-9A-Za-z]+)/?(?:[?#].*)?")


def normalize_track_id(raw: str) -> str:
    """The bare track id of `raw`: `spotify:track:ID` and open.spotify.com track links become
    `ID`; surrounding whitespace is dropped; any other string (an MPD id, a Melon song number,
    a synthetic `t0000001`) is returned as it is."""
    text = raw.strip()
    if "spotify" not in text:  # the common case: already a bare id
        return text
    m = _URI.fullmatch(text) or _URL.fullmatch(text)
    return m.group(1) if m else text


def normalize_track_ids(raw: Iterable[str]) -> list[str]:
    """`normalize_track_id` of each, order kept (duplicates too: callers decide)."""
    return [normalize_track_id(t) for t in raw]


__all__ = ["normalize_track_id", "normalize_track_ids"]
