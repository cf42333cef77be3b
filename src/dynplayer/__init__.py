"""Dynplayer: embedding-based music recommendations learned from playlists.

`from dynplayer import Dynplayer` is the Python API (`dynplayer.api`), imported on first use so
that `import dynplayer` stays cheap."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from dynplayer.api import Dynplayer, Results, Track


def __getattr__(name: str) -> Any:
    if name in ("Dynplayer", "Results", "Track", "Playlist"):
        from dynplayer import api

        return getattr(api, name)
    raise AttributeError(f"module 'dynplayer' has no attribute {name!r}")


__all__ = ["Dynplayer", "Results", "Track", "__version__"]
