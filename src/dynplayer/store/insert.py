"""The served index follows a run update by inserts, not a rebuild (`dynplayer update
--database-url`, `POST /v1/admin/update`).

The live tables already hold the old model version; the updated run's catalog differs from it by
appended rows (new tracks, new playlists), which are inserted, and by values of existing rows:
filled names and artists are written; the popularity of known tracks (it orders the name search)
and the mean track vector of old playlists (`playlist_vector`, not read by any query) keep their
indexed values until the next `dynplayer index`, because updating a row re-inserts it into the
HNSW graph. All of it, and the switch of the active model version, is one transaction: HNSW
takes the inserts, readers see the old rows or the new ones, never a mix. The transaction is opened
and filled by `prepare_insert`, and committed by the caller once the run directory holds the
new version (so API processes that follow the database version find it on disk).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector import HalfVector
from psycopg import sql

from dynplayer.errors import StoreError
from dynplayer.store.catalog import Catalog
from dynplayer.store.db import ADVISORY_LOCK, connect
from dynplayer.store.names import lock_key


@dataclasses.dataclass
class PendingInsert:
    """An open transaction holding the update's rows; `commit` makes them visible at once."""

    conn: psycopg.Connection[Any]
    counts: dict[str, Any]
    started: float

    def commit(self) -> dict[str, Any]:
        try:
            self.conn.commit()
        except psycopg.Error as exc:
            raise StoreError(f"the index update could not be committed: {exc}") from exc
        finally:
            self.conn.close()
        return {**self.counts, "seconds": round(time.perf_counter() - self.started, 3)}

    def abort(self) -> None:
        try:
            self.conn.rollback()
        except psycopg.Error:
            pass
        finally:
            self.conn.close()


def _copy(conn: psycopg.Connection[Any], table: str, columns: list[str], types: list[str],
          rows: Iterator[tuple[Any, ...]]) -> None:
    stmt = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns))
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def prepare_insert(url: str, run_dir: Path, new_run_dir: Path, *, old_version: str,
                   new_version: str, catalog: str | None = None) -> PendingInsert:
    """Open a transaction that turns the database's `old_version` tables into `new_version`'s.

    The database must hold `old_version` (the run as it was before the update); otherwise
    a StoreError says to index the run first. `new_run_dir` is the updated run, still under
    its temporary name; `run_dir` is where it will live. `catalog` names the catalog whose
    tables are updated (None: the unnamed one).
    """
    from dynplayer.store.catalog import build_catalog, load_searcher

    t0 = time.perf_counter()
    new = build_catalog(new_run_dir, load_searcher(new_run_dir))
    new = dataclasses.replace(new, run_dir=str(Path(run_dir).resolve()))
    if new.version != new_version:
        raise StoreError(f"internal: catalog version {new.version} is not {new_version}")
    conn = connect(url, catalog)
    try:
        counts = _fill(conn, new, old_version, catalog)
    except BaseException:
        try:
            conn.rollback()
        finally:
            conn.close()
        raise
    return PendingInsert(conn=conn, counts=counts, started=t0)


def _fill(conn: psycopg.Connection[Any], new: Catalog, old_version: str,
          catalog: str | None = None) -> dict[str, Any]:
    # The transaction-level advisory lock shares its keys with `index_catalog`'s session lock
    # of the same catalog, so a reindex and an update of it never interleave.
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                 [ADVISORY_LOCK, 0 if catalog is None else lock_key(catalog)])
    # (the catalog's own table: `connect` created its schema and model_versions)
    exists = conn.execute("SELECT to_regclass('model_versions') IS NOT NULL").fetchone()
    row = conn.execute("SELECT version, hnsw, dim, text_dim FROM model_versions WHERE active") \
        .fetchone() if exists and exists[0] else None
    if row is None or row[0] != old_version:
        held = "nothing" if row is None else f"model {row[0]}"
        raise StoreError(f"the database holds {held}, not this run's model {old_version}; "
                         "index the run first (`dynplayer index RUN_DIR`), then update")
    _, hnsw, dim, text_dim = row
    from pgvector.psycopg import register_vector

    register_vector(conn)  # the extension exists: the version row says the run was indexed
    if dim != new.vectors.shape[1]:
        raise StoreError(f"the database's tracks have {dim} dimensions, the run "
                         f"{new.vectors.shape[1]}")

    # Tracks: the old rows must be the prefix of the new catalog.
    have = conn.execute("SELECT track_id, popularity, name, artist FROM tracks "
                        "ORDER BY track_idx").fetchall()
    n_old = len(have)
    if [r[0] for r in have] != new.track_ids[:n_old]:
        raise StoreError("the database's tracks are not the run's (reindex the run)")
    # Only filled names are written to existing rows: every UPDATE of a row re-inserts it into
    # the HNSW graph (COPY leaves no room on a page for a HOT update), and refreshing the
    # popularity of every track a new playlist holds cost more than the inserts themselves.
    changed = [i for i, (_, _pop, name, artist) in enumerate(have)
               if (new.names[i], new.artists[i]) != (name, artist)]
    vecs = np.ascontiguousarray(new.vectors, dtype=np.float32)
    _copy(conn, "tracks", ["track_idx", "track_id", "name", "artist", "popularity", "vector"],
          ["int4", "text", "text", "text", "int4", "vector"],
          ((i, new.track_ids[i], new.names[i], new.artists[i], int(new.popularity[i]), vecs[i])
           for i in range(n_old, len(new.track_ids))))
    if changed:
        conn.execute("CREATE TEMP TABLE track_changes (track_idx int, name text, artist text) "
                     "ON COMMIT DROP")
        _copy(conn, "track_changes", ["track_idx", "name", "artist"], ["int4", "text", "text"],
              ((i, new.names[i], new.artists[i]) for i in changed))
        conn.execute("UPDATE tracks t SET name = c.name, artist = c.artist "
                     "FROM track_changes c WHERE t.track_idx = c.track_idx")

    # Playlists: the old rows must be the prefix too; the new ones are inserted.
    prows = conn.execute("SELECT pid FROM playlists ORDER BY row_idx").fetchall()
    p_old = len(prows)
    if [r[0] for r in prows] != new.playlist_pids[:p_old]:
        raise StoreError("the database's playlists are not the run's (reindex the run)")
    pvecs = np.ascontiguousarray(new.playlist_vectors, dtype=np.float32)
    tvecs = new.text_vectors
    if tvecs is not None and text_dim is not None and tvecs.shape[1] != text_dim:
        raise StoreError(f"the database's text vectors have {text_dim} dimensions, the run "
                         f"{tvecs.shape[1]}")
    _copy(conn, "playlists",
          ["row_idx", "pid", "caption", "text_vector", "playlist_vector", "n_tracks"],
          ["int4", "text", "text", "halfvec", "vector", "int4"],
          ((i, new.playlist_pids[i], new.playlist_captions[i],
            None if tvecs is None else HalfVector(tvecs[i]), pvecs[i],
            int(new.playlist_n_tracks[i])) for i in range(p_old, len(new.playlist_pids))))
    conn.execute(
        "INSERT INTO model_versions (version, run_dir, dim, text_dim, n_tracks, n_playlists, "
        "hnsw) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (version) DO UPDATE SET "
        "run_dir = EXCLUDED.run_dir, n_tracks = EXCLUDED.n_tracks, n_playlists = "
        "EXCLUDED.n_playlists, created_at = now()",
        [new.version, new.run_dir, dim, text_dim, len(new.track_ids), len(new.playlist_pids),
         json.dumps(hnsw)])
    conn.execute("UPDATE model_versions SET active = (version = %s)", [new.version])
    return {"version": new.version, "tracks_inserted": len(new.track_ids) - n_old,
            "tracks_renamed": len(changed), "playlists_inserted": len(new.playlist_pids) - p_old}
