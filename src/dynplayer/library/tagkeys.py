"""Keys for matching a library's tags to the catalogue, normalised the way real tags differ.

Case, accents and punctuation go (`dynplayer.names.fold`); a title loses what files and
services add to the same recording: "feat." / "ft." / "featuring" parts, " - Remastered 2011",
"(Live)", "[Explicit]", any other bracketed or dashed extra, a leading track number; an artist
loses a leading or trailing "The" and "&" reads as "and". Each side has a *full* key (only folded)
and a *core* key (the extras removed); the artist also has its *primary* artist (the first of
"A feat. B", "A & B", "A, B", "A x B"). Matching tries the keys from the strictest down.
"""

from __future__ import annotations

import re

from dynplayer.names import fold

_FEAT = r"(?:feat\.?|ft\.?|featuring|with|prod\.?\s+by)"
# "(feat. X)", "[ft. X]" anywhere; a bare "feat. X" to the end
_FEAT_BRACKET = re.compile(r"[(\[]\s*" + _FEAT + r"\s[^)\]]*[)\]]", re.IGNORECASE)
_FEAT_TAIL = re.compile(r"\s" + r"(?:feat\.?|ft\.?|featuring)" + r"\s.*$", re.IGNORECASE)
_BRACKETS = re.compile(r"\s*[(\[{][^)\]}]*[)\]}]")
_DASH_EXTRA = re.compile(r"\s+[-\u2013\u2014/|]\s+.*$")  # "Title - Remastered 2011"
_TRACK_NO = re.compile(r"^\s*(?:\d{1,3}|[a-d]\d{1,2})\s*(?:[-._)]\s*|\s+-\s+)(?=\S)",
                       re.IGNORECASE)
_ARTIST_SPLIT = re.compile(r"\s*(?:,|;|/|&|\+|\sx\s|\sand\s|\s" + _FEAT + r"\s)\s*",
                           re.IGNORECASE)


def _the(key: str) -> str:
    """Drop a leading "the " and a trailing " the" ("Beatles, The" -> "beatles")."""
    if key.startswith("the "):
        key = key[4:]
    if key.endswith(" the"):
        key = key[:-4]
    return key


def artist_key(artist: str | None) -> str:
    """The full artist key: folded, "&" as "and", without "The"."""
    if not artist:
        return ""
    return _the(fold(artist.replace("&", " and ")))


def primary_artist(artist: str | None) -> str:
    """The key of the first artist of "A feat. B", "A & B", "A, B", "A x B" (else the full
    key). "Simon & Garfunkel" so also has the key "simon": exact matching tries the full key
    first."""
    if not artist:
        return ""
    first = _ARTIST_SPLIT.split(artist.strip(), maxsplit=1)[0]
    return _the(fold(first)) or artist_key(artist)


def artist_keys(artist: str | None) -> list[str]:
    """Distinct artist keys, strictest first: full, then primary."""
    out = [artist_key(artist), primary_artist(artist)]
    return [k for i, k in enumerate(out) if k and k not in out[:i]]


def title_key(title: str | None) -> str:
    """The full title key: folded, "&" as "and"."""
    if not title:
        return ""
    return fold(title.replace("&", " and "))


def core_title(title: str | None) -> str:
    """The title without featured artists, bracketed extras, dashed extras ("- Remastered
    2011", "- Live"), and a leading track number; the full key when nothing would be left."""
    if not title:
        return ""
    t = _TRACK_NO.sub("", title)
    t = _FEAT_BRACKET.sub(" ", t)
    t = _BRACKETS.sub(" ", t)
    t = _DASH_EXTRA.sub("", t)
    t = _FEAT_TAIL.sub("", t)
    return title_key(t) or title_key(title)


_PLAIN = re.compile(r"[(\[{/|\-\u2013\u2014]|\bf(?:ea)?t|featuring|^\s*[a-d]?\d", re.IGNORECASE)


def title_keys(title: str | None) -> list[str]:
    """Distinct title keys, strictest first: full, then core."""
    if title and not _PLAIN.search(title):  # nothing to strip: one key (most titles)
        key = title_key(title)
        return [key] if key else []
    out = [title_key(title), core_title(title)]
    return [k for i, k in enumerate(out) if k and k not in out[:i]]


def identity(artist: str | None, title: str | None) -> tuple[str, str]:
    """What makes two catalogue tracks the same song for a listener: (primary artist, core
    title). Two catalogue ids with one identity (a single and its album version) are told
    apart by nothing in a tag, so a match to either is right."""
    return primary_artist(artist), core_title(title)


__all__ = ["artist_key", "artist_keys", "core_title", "identity", "primary_artist",
           "title_key", "title_keys"]
