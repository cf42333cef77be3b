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
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

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


def file_stamp(paths: Iterable[Path]) -> list[str]:
    """Each file's resolved path, size and modification time, for a key (OSError when one
    cannot be read)."""
    out: list[str] = []
    for f in paths:
        st = Path(f).stat()
        out += [str(Path(f).resolve()), str(st.st_size), str(st.st_mtime_ns)]
    return out


def lines_to_array(lines: Sequence[str]) -> np.ndarray:
    """Strings as one UTF-8 byte array (an .npz entry read without pickle); ValueError when
    one holds a line break (the value is then not cached)."""
    text = "\n".join(lines)
    if text.count("\n") != max(len(lines) - 1, 0):
        raise ValueError("a string holds a line break")
    return np.frombuffer(text.encode("utf-8"), np.uint8)


def array_to_lines(a: np.ndarray, n: int) -> list[str]:
    """The n strings `lines_to_array` stored; ValueError when they are not n (an entry of
    other inputs)."""
    lines = a.tobytes().decode("utf-8").split("\n") if n else []
    if len(lines) != n:
        raise ValueError(f"{len(lines)} cached strings, {n} expected")
    return lines


def remembered(kind: str, key: str, build: Callable[[], T], dump: Callable[[T], bytes],
               load: Callable[[bytes], T]) -> T:
    """`build()`, or what an earlier call stored under (kind, key). `load` may raise
    ValueError (or any of the errors a damaged file causes) to have the entry rebuilt."""
    path = cache_root() / kind / key
    try:
        return load(path.read_bytes())
    except (OSError, ValueError, KeyError, EOFError, TypeError, IndexError):
        pass  # absent, damaged or from another version: built below
    value = build()
    try:
        from dynplayer.run import atomic_write_bytes

        atomic_write_bytes(path, dump(value))
    except (OSError, ValueError):
        pass  # a read-only data directory, or a value `dump` refuses: built each time
    return value


__all__ = ["array_to_lines", "cache_root", "file_stamp", "key_of", "lines_to_array",
           "remembered"]
