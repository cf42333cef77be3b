"""Catalog names: one PostgreSQL schema per named catalog, so one database holds several models.

A catalog is what `dynplayer index RUN_DIR --name NAME` loads and `dynplayer serve` serves:
its tracks, playlists and model versions live in the schema `catalog_<name>`, and every
connection for it puts that schema first on its `search_path` (then `public`, which holds the
vector extension), so the store's SQL is the same for every catalog.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

from dynplayer.errors import ConfigError

NAME_MAX = 40
SCHEMA_PREFIX = "catalog_"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")


def check_catalog_name(name: str) -> str:
    """`name` when it is a valid catalog name, else a ConfigError saying what is allowed."""
    if not _NAME.match(name) or len(name) > NAME_MAX:
        raise ConfigError(f"catalog name {name!r}: use 1..{NAME_MAX} lowercase letters, digits "
                          "and underscores, starting with a letter or digit (e.g. mpd, melon)")
    return name


def catalog_name_for(run_dir: Path) -> str:
    """The default catalog name of a run: its directory's name, lowercased, with every run of
    other characters turned into one underscore (`runs/MPD-2024` -> `mpd_2024`)."""
    name = re.sub(r"[^a-z0-9]+", "_", Path(run_dir).resolve().name.lower()).strip("_")
    name = name[:NAME_MAX].rstrip("_")
    return name or "default"


def schema_of(name: str) -> str:
    """The PostgreSQL schema holding catalog `name`."""
    return SCHEMA_PREFIX + check_catalog_name(name)


def lock_key(name: str) -> int:
    """The second key of the reindex advisory lock: reindexes of one catalog are serialised,
    reindexes of different catalogs are not."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF
