"""Indexing a run: read it (track vectors, names, playlists, text vectors) into a `Catalog` and
load that into the store; the one function every indexing path calls (`dynplayer index`, the
service's (re)index, `bench serve`, the demo)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dynplayer.errors import ConfigError
from dynplayer.settings import Settings
from dynplayer.store.catalog import IndexReport
from dynplayer.store.db import index_catalog
from dynplayer.store.params import HNSW_EF_CONSTRUCTION, HNSW_M, HNSW_TRACK_M
from dynplayer.text.api import TextSearcherProtocol

Echo = Callable[[str], None]


def embedded_url(settings: Settings, pgdata: Path | None = None) -> tuple[str, Any | None]:
    """The database URL: the configured one, else a started embedded server (returned too, for
    the caller to stop)."""
    if settings.database_url:
        return settings.database_url, None
    from dynplayer.store.embedded import EmbeddedServer, default_pgdata

    server = EmbeddedServer(pgdata or default_pgdata(settings.resolved_data_dir()))
    return server.start(), server


def index_searcher_run(url: str, run_dir: Path, searcher: TextSearcherProtocol | None, *,
                       m: int = HNSW_M, ef_construction: int = HNSW_EF_CONSTRUCTION,
                       progress: Echo | None = None, name: str | None = None,
                       track_m: int = HNSW_TRACK_M) -> IndexReport:
    """Build the run's catalog (with `searcher`'s playlists and text vectors, when given) and
    swap it into the store at `url` as the catalog `name` (see `index_catalog`)."""
    from dynplayer.store.catalog import build_catalog

    return index_catalog(url, build_catalog(run_dir, searcher), m=m,
                         ef_construction=ef_construction, progress=progress, name=name,
                         track_m=track_m)


def index_run(run_dir: Path, settings: Settings, *, echo: Echo = print,
              pgdata: Path | None = None) -> IndexReport:
    """Load RUN_DIR (track vectors, names, playlists, text vectors) into the configured store
    as the catalog `settings.catalog` (None: the unnamed one), starting the embedded server for
    the time it takes when no URL is configured. Other catalogs are not touched."""
    from dynplayer.store.catalog import build_catalog, load_searcher

    t0 = time.perf_counter()
    searcher = load_searcher(run_dir)
    if searcher is None:
        echo(f"note: {run_dir} has no text model; playlists are indexed without text vectors")
    catalog = build_catalog(run_dir, searcher)
    echo(f"read run {run_dir} ({time.perf_counter() - t0:.1f}s): model {catalog.version}")
    if catalog.track_map is not None:
        echo(f"track map: {catalog.track_map.rows.shape[0]:,} tracks placed in "
             f"{catalog.track_map.seconds:.1f}s (PCA + neighbour layout)")
    url, server = embedded_url(settings, pgdata)
    try:
        return index_catalog(url, catalog, m=settings.hnsw_m,
                             ef_construction=settings.hnsw_ef_construction, progress=echo,
                             name=settings.catalog, track_m=settings.hnsw_track_m)
    finally:
        if server is not None:
            server.stop()


def stored_model(url: str, name: str | None, version: str, run_dir: Path) -> dict[str, Any]:
    """What the store at `url` holds for the catalog `name`, which must serve `version`
    (`bench serve --store`): its counts and HNSW settings; a ConfigError naming the fix
    otherwise."""
    from dynplayer.store.db import active_version, connect

    with connect(url, name) as conn:
        active = active_version(conn)
        if active != version:
            held = f"model {active}" if active else "no model"
            raise ConfigError(f"--store: the store holds {held}, not {run_dir}'s model "
                              f"{version}; run `dynplayer index {run_dir}` first")
        row = conn.execute("SELECT n_tracks, n_playlists, hnsw FROM model_versions "
                           "WHERE active AND version = %s", [version]).fetchone()
    if row is None:  # swapped out between the two reads
        raise ConfigError(f"--store: {run_dir}'s model {version} stopped being the store's "
                          "active one while it was read; run the benchmark again")
    return {"store": "as indexed", "tracks": int(row[0]), "playlists": int(row[1]),
            "hnsw": row[2]}
