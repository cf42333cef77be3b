"""Derived data remembered between one-shot commands: what a CLI call would otherwise rebuild
from the same inputs every time (folded track names, the text model's metadata index, the text
encoder's parsed tokenizer).

Entries live in the data directory's `cache/` (DYNPLAYER_DATA_DIR, else the user data dir),
never in a run directory, which a read must not change. Each is named by a hash of everything
it is derived from, written atomically, and read back only when whole; an unreadable or
unwritable cache is never an error, only the slower path.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def cache_root() -> Path:
    import platformdirs

    return Path(os.environ.get("DYNPLAYER_DATA_DIR")
                or platformdirs.user_data_dir("dynplayer")) / "cache"


def key_of(parts: Iterable[str | bytes]) -> str:
    """A hex key over `parts` (each length-prefixed, so no two lists collide)."""
    h = hashlib.sha256()
    for p in parts:
        b = p.encode() if isinstance(p, str) else p
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()[:32]


def remembered(kind: str, key: str, build: Callable[[], T], dump: Callable[[T], bytes],
               load: Callable[[bytes], T]) -> T:
    """`build()`, or what an earlier call stored under (kind, key). `load` may raise
    ValueError (or any of the errors a damaged file causes) to have the entry rebuilt."""
    path = cache_root() / kind / key
    try:
        return load(path.read_bytes())
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, EOFError, TypeError, IndexError):
        pass  # damaged or from another version: rebuilt below
    value = build()
    try:
        from dynplayer.run import atomic_write_bytes

        atomic_write_bytes(path, dump(value))
    except OSError:
        pass  # a read-only data directory: build each time
    return value


__all__ = ["cache_root", "key_of", "remembered"]
