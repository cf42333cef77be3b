"""Schema, binary COPY loading with HNSW built afterwards, the atomic reindex swap, and the pool.

Tables, in the schema of their catalog (`catalog_<name>`, see `dynplayer.store.names`; the
unnamed catalog of library calls without a name is the public schema, as before catalogs):
  tracks          track_idx, track_id, name, artist, popularity, vector vector(d)   [HNSW cosine],
                  genre, map_x, map_y (the track map, `dynplayer.store.trackmap`; NULL: not on it)
  playlists       row_idx, pid, caption, text_vector halfvec(t) [HNSW cosine], playlist_vector
                  vector(d), n_tracks
  model_versions  version, run_dir, dims, counts, hnsw params, created_at, active

`text_vector` is the text model's joint-space playlist vector (what a text query is ranked
against, row `row_idx` of `TextSearcher.playlist_vectors`), stored in half precision: at 768
dimensions that halves the bytes each HNSW distance reads (a scratch timing on MPD: about 1.6x
faster per search at the same recall; docs/benchmarks.md, Serving);
`playlist_vector` is the normalised
mean of the playlist's track vectors. A reindex loads into freshly named staging tables, builds
the indexes, runs ANALYZE, and swaps them in with one transaction, so readers never see a
partial index.
"""

from __future__ import annotations

import json
import secrets
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import psycopg
from pgvector import HalfVector
from psycopg import sql
from psycopg_pool import ConnectionPool

from dynplayer.errors import ConfigError, StoreError
from dynplayer.machine import available_memory_bytes, usable_cpus
from dynplayer.run import MODEL_VERSION_SALT
from dynplayer.store.catalog import Catalog, IndexReport
from dynplayer.store.names import lock_key, schema_of
from dynplayer.store.params import (
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    HNSW_TRACK_M,
    hnsw_build_settings,
)

ADVISORY_LOCK = 0x64796E70  # serialises concurrent reindexes ("dynp")
# Part of every model version: a database indexed with another table layout (schema 1 stored
# text vectors as vector, not halfvec) holds "another version" and is reindexed, never misread.
STORE_SCHEMA = MODEL_VERSION_SALT  # in every model version: a new schema, new versions


# ---- connections --------------------------------------------------------------------------


def _configure(statement_timeout_ms: int) -> Callable[[psycopg.Connection[Any]], None]:
    def configure(conn: psycopg.Connection[Any]) -> None:
        from pgvector.psycopg import register_vector

        # Autocommit: every query is its own transaction, so no BEGIN/COMMIT round trips.
        conn.autocommit = True
        try:
            register_vector(conn)
        except psycopg.ProgrammingError as exc:
            raise StoreError("the pgvector extension is not installed in this database "
                             "(run `dynplayer index` once, or CREATE EXTENSION vector)") from exc
        conn.execute(f"SET statement_timeout = {int(statement_timeout_ms)}")

    return configure


class _IdleCheck:
    """Check a connection on checkout only when it sat idle in the pool for a while.

    A connection in steady use proves itself; one that has been idle may have lost its server
    (a restart), and checking it costs a round trip that busy connections need not pay. A busy
    connection broken by an outage fails its request with 503 and is discarded by the pool.
    """

    def __init__(self, idle_s: float = 1.0) -> None:
        self.idle_s = idle_s
        self.returned: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = \
            weakref.WeakKeyDictionary()

    def reset(self, conn: psycopg.Connection[Any]) -> None:
        self.returned[conn] = time.monotonic()

    def check(self, conn: psycopg.Connection[Any]) -> None:
        if time.monotonic() - self.returned.get(conn, 0.0) > self.idle_s:
            ConnectionPool.check_connection(conn)


def _catalog_options(catalog: str | None) -> dict[str, Any]:
    """Connection parameters putting the catalog's schema first on the search path (then public,
    which holds the vector extension); none for the unnamed catalog."""
    if catalog is None:
        return {}
    return {"options": f"-c search_path={schema_of(catalog)},public"}


def open_pool(url: str, *, min_size: int = 2, max_size: int = 8, timeout: float = 1.0,
              statement_timeout_ms: int = 2000, catalog: str | None = None) -> ConnectionPool:
    """A pool of autocommit connections with pgvector registered (the pool's configure hook),
    on `catalog`'s tables (None: the unnamed catalog's).

    Prepared statements are off: a reindex swaps tables under the same names, and a statement
    prepared against the old table must not outlive it.
    """
    idle = _IdleCheck()
    pool = ConnectionPool(
        url, min_size=min_size, max_size=max(min_size, max_size), timeout=timeout,
        configure=_configure(statement_timeout_ms), check=idle.check, reset=idle.reset,
        kwargs={"prepare_threshold": None, "connect_timeout": 2, **_catalog_options(catalog)},
        open=False,
        reconnect_timeout=3600.0, name="dynplayer",
    )
    pool.open(wait=False)
    return pool


def connect(url: str, catalog: str | None = None) -> psycopg.Connection[Any]:
    """A connection on `catalog`'s tables (None: the unnamed catalog's, in public). A named
    catalog's schema and its model_versions table are created when missing, so that a name never
    resolves to another catalog's (public) tables."""
    try:
        conn = psycopg.connect(url, connect_timeout=5, **_catalog_options(catalog))
    except psycopg.OperationalError as exc:
        raise StoreError(f"cannot connect to the database: {str(exc).strip()}") from exc
    if catalog is not None:
        try:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}")
                         .format(sql.Identifier(schema_of(catalog))))
            ensure_schema(conn)
        except psycopg.Error as exc:
            conn.close()
            raise StoreError(f"cannot create the schema of catalog {catalog!r}: "
                             f"{str(exc).strip()}") from exc
    return conn


def list_catalogs(conn: psycopg.Connection[Any]) -> list[str]:
    """Names of the catalogs this database holds a model for (named ones; sorted)."""
    from dynplayer.store.names import SCHEMA_PREFIX

    rows = conn.execute(
        "SELECT n.nspname FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid "
        "WHERE c.relname = 'tracks' AND n.nspname LIKE %s ORDER BY 1",
        [SCHEMA_PREFIX.replace("_", "\\_") + "%"]).fetchall()
    return [str(r[0])[len(SCHEMA_PREFIX):] for r in rows]


PGVECTOR_MIN = (0, 7)  # halfvec and its HNSW operator class


def check_pgvector_version(version: str) -> None:
    """A clear StoreError when the installed pgvector is older than the store needs."""
    try:
        have = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        return  # a development build: let PostgreSQL answer for itself
    if have < PGVECTOR_MIN:
        need = ".".join(map(str, PGVECTOR_MIN))
        raise StoreError(f"pgvector {version} is installed; Dynplayer needs {need} or newer (it "
                         "stores text vectors as halfvec): ALTER EXTENSION vector UPDATE")


def ensure_extension(conn: psycopg.Connection[Any]) -> None:
    """CREATE EXTENSION vector when missing (the only step needing a superuser); fail loudly."""
    have = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    if have:
        check_pgvector_version(str(have[0]))
        return
    try:
        # In public, whichever catalog's search path is set: every catalog shares it.
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
        conn.commit()
    except psycopg.Error as exc:
        conn.rollback()
        raise StoreError(
            "the pgvector extension is missing and could not be created "
            f"({str(exc).strip()}); ask an administrator to run CREATE EXTENSION vector"
        ) from exc


def ensure_schema(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        """CREATE TABLE IF NOT EXISTS model_versions (
             version text PRIMARY KEY,
             run_dir text NOT NULL,
             dim int NOT NULL,
             text_dim int,
             n_tracks int NOT NULL,
             n_playlists int NOT NULL,
             hnsw jsonb NOT NULL,
             created_at timestamptz NOT NULL DEFAULT now(),
             active boolean NOT NULL DEFAULT false)"""
    )
    conn.commit()


def active_version(conn: psycopg.Connection[Any]) -> str | None:
    """The model version the live tables hold, or None when nothing is indexed."""
    exists = conn.execute("SELECT to_regclass('model_versions') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return None
    row = conn.execute("SELECT version FROM model_versions WHERE active").fetchone()
    return None if row is None else str(row[0])


# ---- loading ------------------------------------------------------------------------------


COPY_CHUNK = 50_000  # rows per binary COPY (each committed: a staging table, swapped in later)


def _copy_rows(conn: psycopg.Connection[Any], table: str, columns: list[str], types: list[str],
               rows: Iterator[tuple[Any, ...]], *, total: int = 0,
               say: Callable[[str], None] | None = None, chunk: int = COPY_CHUNK) -> None:
    """Binary COPY in chunks of `chunk` rows, with rows/s and ETA through `say`."""
    stmt = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns))
    t0, done, more = time.perf_counter(), 0, True
    while more:
        more = False
        with conn.cursor() as cur, cur.copy(stmt) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)
                done += 1
                if done % chunk == 0:
                    more = True
                    break
        conn.commit()
        if say is not None and total > chunk:
            rate = done / max(time.perf_counter() - t0, 1e-9)
            say(f"{table}: {done:,}/{total:,} rows ({rate:,.0f} rows/s, "
                f"ETA {(total - done) / rate:.0f} s)")


def _hnsw_settings(conn: psycopg.Connection[Any], n_rows: int, vector_bytes: int,
                   m: int) -> str:
    """SET maintenance_work_mem and parallel maintenance workers for one build (from the
    machine: store/params.py); returns what was set."""
    mem_mb, workers = hnsw_build_settings(n_rows, vector_bytes, m,
                                          available_bytes=available_memory_bytes(),
                                          cpus=usable_cpus())
    conn.execute(sql.SQL("SET maintenance_work_mem = {}").format(sql.Literal(f"{mem_mb}MB")))
    conn.execute(sql.SQL("SET max_parallel_maintenance_workers = {}").format(
        sql.Literal(workers)))
    return f"maintenance_work_mem {mem_mb} MB, {workers} parallel workers"


def index_catalog(url: str, catalog: Catalog, *, m: int = HNSW_M,
                  ef_construction: int = HNSW_EF_CONSTRUCTION,
                  progress: Callable[[str], None] | None = None,
                  name: str | None = None, track_m: int = HNSW_TRACK_M) -> IndexReport:
    """Load `catalog` into new tables, build HNSW + ANALYZE, and swap them in atomically, as
    the catalog `name` (None: the unnamed one); other catalogs' tables are not touched.
    `m` is the playlists' graph, `track_m` the tracks' (see store.params)."""
    for what, links in (("m", m), ("track m", track_m)):
        if not 2 <= links <= 100:
            raise ConfigError(f"HNSW {what} must be from 2 to 100, got {links}")
    if not max(4, 2 * max(m, track_m)) <= ef_construction <= 1000:
        raise ConfigError(f"HNSW ef_construction must be from 2 x the larger m (m {m}, "
                          f"tracks' m {track_m}: {max(4, 2 * max(m, track_m))}) to 1000, got "
                          f"{ef_construction}")
    say = progress or (lambda _msg: None)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    token = secrets.token_hex(4)
    t_tracks, t_playlists = f"tracks_s{token}", f"playlists_s{token}"
    d = int(catalog.vectors.shape[1])
    td = None if catalog.text_vectors is None else int(catalog.text_vectors.shape[1])
    lock = [ADVISORY_LOCK, 0 if name is None else lock_key(name)]
    with connect(url) as admin:  # the extension first: the catalog's schema needs its types
        ensure_extension(admin)
    with connect(url, name) as conn:
        from pgvector.psycopg import register_vector

        register_vector(conn)
        ensure_schema(conn)
        conn.execute("SELECT pg_advisory_lock(%s, %s)", lock)
        try:
            _drop_leftover_staging(conn)
            conn.execute(sql.SQL(
                "CREATE TABLE {} (track_idx int PRIMARY KEY, track_id text NOT NULL UNIQUE, "
                "name text, artist text, popularity int NOT NULL, vector vector({}) NOT NULL, "
                "genre text, map_x real, map_y real)"
            ).format(sql.Identifier(t_tracks), sql.Literal(d)))
            text_col = sql.SQL("text_vector halfvec({})").format(sql.Literal(td)) if td else \
                sql.SQL("text_vector halfvec")
            conn.execute(sql.SQL(
                "CREATE TABLE {} (row_idx int PRIMARY KEY, pid text NOT NULL, caption text "
                "NOT NULL, {}, playlist_vector vector({}), n_tracks int NOT NULL)"
            ).format(sql.Identifier(t_playlists), text_col, sql.Literal(d)))
            conn.commit()
            t1 = time.perf_counter()
            vecs = np.ascontiguousarray(catalog.vectors, dtype=np.float32)
            n = len(catalog.track_ids)
            # (A catalog trimmed by hand may carry its parent's map: what fits is kept.)
            genres = catalog.genres if catalog.genres is not None and \
                len(catalog.genres) == n else [None] * n
            map_xy: list[tuple[float, float] | tuple[None, None]] = [(None, None)] * n
            if catalog.track_map is not None:
                for r, (x, y) in zip(catalog.track_map.rows.tolist(),
                                     catalog.track_map.xy.tolist(), strict=True):
                    if r < n:
                        map_xy[r] = (x, y)
            _copy_rows(conn, t_tracks,
                       ["track_idx", "track_id", "name", "artist", "popularity", "vector",
                        "genre", "map_x", "map_y"],
                       ["int4", "text", "text", "text", "int4", "vector", "text", "float4",
                        "float4"],
                       ((i, catalog.track_ids[i], catalog.names[i], catalog.artists[i],
                         int(catalog.popularity[i]), vecs[i], genres[i], *map_xy[i])
                        for i in range(n)),
                       total=n, say=say)
            pvecs = np.ascontiguousarray(catalog.playlist_vectors, dtype=np.float32)
            tvecs = catalog.text_vectors
            _copy_rows(conn, t_playlists,
                       ["row_idx", "pid", "caption", "text_vector", "playlist_vector",
                        "n_tracks"],
                       ["int4", "text", "text", "halfvec", "vector", "int4"],
                       ((i, catalog.playlist_pids[i], catalog.playlist_captions[i],
                         None if tvecs is None else HalfVector(tvecs[i]),
                         pvecs[i], int(catalog.playlist_n_tracks[i]))
                        for i in range(len(catalog.playlist_pids))),
                       total=len(catalog.playlist_pids), say=say)
            conn.commit()
            times["copy"] = time.perf_counter() - t1
            say(f"copied {len(catalog.track_ids):,} tracks and {len(catalog.playlist_pids):,} "
                f"playlists in {times['copy']:.1f}s")
            t2 = time.perf_counter()
            def with_params(links: int) -> sql.Composed:
                return sql.SQL("WITH (m = {}, ef_construction = {})").format(
                    sql.Literal(int(links)), sql.Literal(int(ef_construction)))

            say("tracks HNSW: " + _hnsw_settings(conn, len(catalog.track_ids), 4 * d, track_m))
            conn.execute(sql.SQL("CREATE INDEX {} ON {} USING hnsw (vector vector_cosine_ops) {}")
                         .format(sql.Identifier(f"tracks_hnsw_{token}"),
                                 sql.Identifier(t_tracks), with_params(track_m)))
            if td:
                say("playlists HNSW: " + _hnsw_settings(conn, len(catalog.playlist_pids),
                                                        2 * td, m))
                conn.execute(sql.SQL(
                    "CREATE INDEX {} ON {} USING hnsw (text_vector halfvec_cosine_ops) {}"
                ).format(sql.Identifier(f"playlists_hnsw_{token}"),
                         sql.Identifier(t_playlists), with_params(m)))
            # The page's track map reads the most popular mapped tracks: by this index, not
            # by sorting the whole table (seconds at millions of tracks).
            conn.execute(sql.SQL("CREATE INDEX {} ON {} (popularity DESC, track_idx) WHERE "
                                 "map_x IS NOT NULL").format(
                sql.Identifier(f"tracks_map_{token}"), sql.Identifier(t_tracks)))
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(t_tracks)))
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(t_playlists)))
            conn.commit()
            times["hnsw_and_analyze"] = time.perf_counter() - t2
            say(f"built HNSW (m={track_m} tracks / {m} playlists, ef_construction="
                f"{ef_construction}) and analysed in "
                f"{times['hnsw_and_analyze']:.1f}s")
            t3 = time.perf_counter()
            _swap(conn, catalog, t_tracks, t_playlists, d, td,
                  {"m": m, "track_m": track_m, "ef_construction": ef_construction})
            times["swap"] = time.perf_counter() - t3
        except BaseException:
            conn.rollback()
            _drop_leftover_staging(conn)
            raise
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", lock)
            conn.commit()
    times["total"] = time.perf_counter() - t0
    return IndexReport(version=catalog.version, tracks=len(catalog.track_ids),
                       playlists=len(catalog.playlist_pids),
                       seconds={k: round(v, 3) for k, v in times.items()})


TRACK_ROWS_CHUNK = 50_000  # rows per statement when a whole tracks table is read


def read_track_rows(conn: psycopg.Connection[Any], columns: list[str],
                    chunk: int = TRACK_ROWS_CHUNK) -> list[tuple[Any, ...]]:
    """`columns` of every row of the catalog's tracks table, in track_idx order, read `chunk`
    rows per statement along the primary key: in one statement a table of millions of tracks
    (1.2 GB at 2M, the vectors included) runs past the pool's statement timeout."""
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    query = sql.SQL("SELECT track_idx, {} FROM tracks WHERE track_idx > %s ORDER BY track_idx "
                    "LIMIT %s").format(cols)
    out: list[tuple[Any, ...]] = []
    last = -1
    while True:
        rows = conn.execute(query, [last, chunk]).fetchall()
        out.extend(tuple(r[1:]) for r in rows)
        if len(rows) < chunk:
            return out
        last = int(rows[-1][0])


def _drop_leftover_staging(conn: psycopg.Connection[Any]) -> None:
    """Staging tables of an indexing run that died; called under the advisory lock."""
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND "
        "(tablename ~ '^tracks_s[0-9a-f]{8}$' OR tablename ~ '^playlists_s[0-9a-f]{8}$')"
    ).fetchall()
    for (name,) in rows:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
    conn.commit()


def _swap(conn: psycopg.Connection[Any], catalog: Catalog, t_tracks: str, t_playlists: str,
          d: int, td: int | None, hnsw: dict[str, int]) -> None:
    """One transaction: old tables out, staging tables in, active version switched."""
    with conn.transaction():
        conn.execute("SET LOCAL lock_timeout = '10s'")
        # Qualified: unqualified, a catalog's first index would drop public's (the unnamed
        # catalog's) tables, which its search path also reaches.
        (schema,) = conn.execute("SELECT current_schema()").fetchone() or ("public",)
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(schema, "tracks")))
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}")
                     .format(sql.Identifier(schema, "playlists")))
        conn.execute(sql.SQL("ALTER TABLE {} RENAME TO tracks").format(sql.Identifier(t_tracks)))
        conn.execute(sql.SQL("ALTER TABLE {} RENAME TO playlists")
                     .format(sql.Identifier(t_playlists)))
        conn.execute(
            "INSERT INTO model_versions (version, run_dir, dim, text_dim, n_tracks, n_playlists, "
            "hnsw) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (version) DO UPDATE SET "
            "run_dir = EXCLUDED.run_dir, hnsw = EXCLUDED.hnsw, created_at = now()",
            [catalog.version, catalog.run_dir, d, td, len(catalog.track_ids),
             len(catalog.playlist_pids), json.dumps(hnsw)],
        )
        conn.execute("UPDATE model_versions SET active = (version = %s)", [catalog.version])
    conn.commit()
