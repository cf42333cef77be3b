"""The server's buffer cache and the catalog's HNSW indexes: reading them in as a model loads,
and the planner's row counts the searches size themselves by."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import sql


def planned_rows(conn: psycopg.Connection[Any], table: str) -> int:
    """`table`'s row count as the planner knows it (set by an index build or ANALYZE; 0 before):
    the search path's table, without counting its rows."""
    row = conn.execute("SELECT greatest(reltuples, 0)::bigint FROM pg_class "
                       "WHERE oid = to_regclass(%s)", [table]).fetchone()
    return int(row[0]) if row else 0


# shared_buffers in bytes (the setting counts 8 kB blocks): read by the prewarm and the
# embedded server's sizing (`store.embedded.fit_buffers`)
BUFFERS_BYTES_SQL = "SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers'"
PREWARM_SHARE = 0.9  # prewarm only indexes that fill at most this share of shared_buffers


def prewarm_indexes(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """Read the search path's HNSW indexes (tracks, playlists) into shared_buffers with
    pg_prewarm, when they fit in them, so the first searches after a start find their pages
    in memory; the service calls it as it loads a model. Returns what it did: the indexes'
    MB and the seconds, or `skipped` with the reason (the extension missing or not allowed,
    indexes larger than the buffers). Never raises for those."""
    row = conn.execute(
        "SELECT coalesce(sum(pg_relation_size(c.oid)), 0), array_agg(c.oid::bigint), "
        f"({BUFFERS_BYTES_SQL}) "
        "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'hnsw' "
        "AND i.indrelid IN (to_regclass('tracks'), to_regclass('playlists'))").fetchone()
    assert row is not None
    size, oids, buffers = int(row[0]), list(row[1] or []), int(row[2])
    out: dict[str, Any] = {"index_mb": round(size / 2**20, 1), "buffers_mb": buffers // 2**20}
    if not oids or size > buffers * PREWARM_SHARE:
        return {**out, "skipped": "no HNSW index" if not oids else "larger than the buffers"}
    t0 = time.perf_counter()
    try:
        conn.execute("SET statement_timeout = 0")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm SCHEMA public")
        ext = conn.execute("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n "
                           "ON n.oid = e.extnamespace WHERE e.extname = 'pg_prewarm'").fetchone()
        assert ext is not None
        fn = sql.SQL("SELECT {}.pg_prewarm(%s::oid)").format(sql.Identifier(ext[0]))
        for oid in oids:
            conn.execute(fn, [oid])
        conn.commit()
    except psycopg.Error as exc:
        conn.rollback()
        return {**out, "skipped": str(exc).strip().splitlines()[0]}
    return {**out, "seconds": round(time.perf_counter() - t0, 2)}
