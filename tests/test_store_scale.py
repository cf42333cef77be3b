"""Indexing at scale: chunked binary COPY with progress, and HNSW build settings from the
machine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from dynplayer.store.db import _copy_rows, connect
from dynplayer.store.params import MIN_MAINTENANCE_MB, hnsw_build_settings


def test_hnsw_build_settings_follow_the_graph_and_the_machine() -> None:
    gib = 2**30
    # 10k x 256 float32, m 16: 10k * (1024 + 16 * 34 + 192) * 1.25 bytes = 21 MiB: the floor.
    assert hnsw_build_settings(10_000, 1024, 16, available_bytes=16 * gib, cpus=2) == (
        MIN_MAINTENANCE_MB, 1)
    # 1M playlists x 256-d halfvec: 1M * (512 + 544 + 192) * 1.25 = 1,488 MiB, under 40% of 16 GiB.
    assert hnsw_build_settings(1_000_000, 512, 16, available_bytes=16 * gib, cpus=16) == (
        1488, 7)
    # 494k tracks x 256 float32 with m 32 (the whole catalogue at 250k playlists): 1,340 MiB,
    # where 944 spilled.
    assert hnsw_build_settings(494_405, 1024, 32, available_bytes=16 * gib, cpus=2) == (1340, 1)
    # 1M x 768-d halfvec on 2 GiB available: capped at 40% (819 MiB), no workers on 1 core.
    assert hnsw_build_settings(1_000_000, 1536, 16, available_bytes=2 * gib, cpus=1) == (819, 0)


@pytest.mark.db
def test_chunked_copy_loads_every_row_and_reports_progress(
        new_database: Callable[[str], str]) -> None:
    from pgvector.psycopg import register_vector

    url = new_database("dynplayer_copy_chunks")
    lines: list[str] = []
    vecs = np.arange(23 * 3, dtype=np.float32).reshape(23, 3)
    with connect(url) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(conn)
        conn.execute("CREATE TABLE t (i int PRIMARY KEY, name text, v vector(3))")
        conn.commit()
        _copy_rows(conn, "t", ["i", "name", "v"], ["int4", "text", "vector"],
                   ((i, f"row {i}", vecs[i]) for i in range(23)), total=23, say=lines.append,
                   chunk=10)
        rows = conn.execute("SELECT i, name, v FROM t ORDER BY i").fetchall()
    assert [r[0] for r in rows] == list(range(23))
    assert rows[22][1] == "row 22" and np.array_equal(rows[22][2].to_numpy(), vecs[22])
    assert len(lines) == 3  # chunks of 10, 10 and 3
    assert lines[0].startswith("t: 10/23 rows (") and "ETA" in lines[0]
    assert lines[-1].startswith("t: 23/23 rows")


@pytest.mark.db
def test_a_whole_tracks_table_is_read_in_chunks_along_the_key(indexed_url: str,
                                                              serve_catalog: Any) -> None:
    """The served names come in statements of `chunk` rows (one statement over millions of
    tracks ran past the pool's 2 s timeout at 1M playlists): every row once, in order."""
    from dynplayer.store.db import read_track_rows

    with connect(indexed_url) as conn:
        whole = conn.execute("SELECT track_id, name, artist FROM tracks "
                             "ORDER BY track_idx").fetchall()
        for chunk in (7, len(whole), len(whole) + 1):
            assert read_track_rows(conn, ["track_id", "name", "artist"], chunk=chunk) == whole
        # the page's track map reads the most popular mapped tracks by an index
        indexes = [d for (d,) in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'tracks'").fetchall()]
    assert [r[0] for r in whole] == list(serve_catalog.track_ids)
    assert any("popularity DESC, track_idx" in d and "map_x IS NOT NULL" in d for d in indexes)
