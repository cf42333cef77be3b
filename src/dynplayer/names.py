"""Names as people type and tag them, folded to comparable keys: the one place accents, case and
punctuation are dropped (track lookup in `serve.track_search`, library matching in `library`).
"""

from __future__ import annotations

import re

from unidecode import unidecode

_NON_WORD = re.compile(r"[^0-9a-z]+")


def fold(text: str | None) -> str:
    """Lower-case ASCII words of `text`: accents dropped, other scripts transliterated
    (unidecode: 'Beyoncé' -> 'beyonce', '아이유' -> 'aiyu'), punctuation to single spaces."""
    if not text:
        return ""
    ascii_text = text if text.isascii() else unidecode(text)
    return " ".join(_NON_WORD.sub(" ", ascii_text.lower()).split())


__all__ = ["fold"]
