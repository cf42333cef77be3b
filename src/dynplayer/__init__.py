"""Dynplayer: embedding-based music recommendations learned from playlists.

One package per stage, each saying in its own docstring what it owns and what it must not
import (checked by tests/test_layout.py), from the bottom layer up:
  errors, config, run   shared by every stage: user errors, stage configs, the run directory
  data      input files -> the corpus directory
  model     the track embedding table and its losses
  eval      metrics, the continuation protocol, peers, hubness, the genre probe, reports
  train     corpus -> run directory (track vectors), validated with `eval`
  text      run -> RUN_DIR/text/ (caption <-> playlist model) and keyword -> tracks search
  store     run -> PostgreSQL + pgvector tables (the one indexing function)
  serve     the recommenders, the API and the web page over a store or in memory (runtime
            settings: `settings`, DYNPLAYER_* variables)
  commands  the `dynplayer` CLI (cli.py): thin adapters over the packages; nothing imports it
The data flow and the contracts between the stages: docs/architecture.md.

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
