"""The vector store on the real embedded PostgreSQL: round trip, HNSW, the atomic reindex swap,
a missing extension, and recovery from a crashed client."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import psycopg
import pytest

from dynplayer.errors import StoreError
from dynplayer.store.buffers import prewarm_indexes
from dynplayer.store.catalog import Catalog
from dynplayer.store.db import (
    active_version,
    check_pgvector_version,
    connect,
    ensure_extension,
    index_catalog,
)
from dynplayer.store.embedded import BUFFERS_MIN_MB, HANDLES_FILE, EmbeddedServer, buffers_for

pytestmark = pytest.mark.db


def test_round_trip(indexed_url: str, serve_catalog: Catalog) -> None:
    from pgvector.psycopg import register_vector

    c = serve_catalog
    with connect(indexed_url) as conn:
        register_vector(conn)
        assert active_version(conn) == c.version
        rows = conn.execute("SELECT track_idx, track_id, name, artist, popularity, vector "
                            "FROM tracks ORDER BY track_idx").fetchall()
        assert [r[1] for r in rows] == c.track_ids
        assert [r[2] for r in rows] == c.names and [r[3] for r in rows] == c.artists
        assert [r[4] for r in rows] == c.popularity.tolist()
        stored = np.stack([r[5].to_numpy() for r in rows])
        np.testing.assert_array_equal(stored, c.vectors)  # float32 in, float32 out
        pl = conn.execute("SELECT pid, caption, text_vector, playlist_vector, n_tracks "
                          "FROM playlists ORDER BY row_idx").fetchall()
        assert [r[0] for r in pl] == c.playlist_pids
        assert [r[1] for r in pl] == c.playlist_captions
        assert c.text_vectors is not None
        # Text vectors are stored in half precision (halfvec): exactly the float16 rounding.
        np.testing.assert_array_equal(np.stack([r[2].to_numpy() for r in pl]),
                                      c.text_vectors.astype(np.float16))
        np.testing.assert_allclose(np.stack([r[3].to_numpy() for r in pl]), c.playlist_vectors,
                                   atol=1e-6)
        assert [r[4] for r in pl] == c.playlist_n_tracks.tolist()
        indexes = dict(conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('tracks', "
            "'playlists') AND indexdef LIKE '%hnsw%'").fetchall())
        assert len(indexes) == 2
        from dynplayer.store.params import HNSW_EF_CONSTRUCTION, HNSW_M, HNSW_TRACK_M

        assert all(f"ef_construction='{HNSW_EF_CONSTRUCTION}'" in d for d in indexes.values())
        # the tracks' graph has more links than the playlists' (store.params says why)
        by_ops = {d.split("USING hnsw ")[1].split(")")[0]: d for d in indexes.values()}
        assert f"m='{HNSW_TRACK_M}'" in by_ops["(vector vector_cosine_ops"], indexes
        assert f"m='{HNSW_M}'" in by_ops["(text_vector halfvec_cosine_ops"], indexes
        ops = sorted(d.split("USING hnsw ")[1].split(")")[0] for d in indexes.values())
        assert ops == ["(text_vector halfvec_cosine_ops", "(vector vector_cosine_ops"], indexes
        # ANALYZE ran: the planner knows the row counts, and uses the index for k-NN
        reltuples = conn.execute("SELECT reltuples FROM pg_class WHERE relname = 'tracks'"
                                 ).fetchone()
        assert reltuples is not None and reltuples[0] == len(c.track_ids)
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT track_id FROM tracks ORDER BY vector <=> %s LIMIT 10",
            [c.vectors[0]]).fetchall())
        assert "tracks_hnsw_" in plan


def test_reindex_swaps_atomically_under_readers(new_database: Any,
                                                serve_catalog: Catalog) -> None:
    """Readers running throughout a reindex see the old or the new model, never a gap."""
    url = new_database("swap")
    index_catalog(url, serve_catalog)
    n = len(serve_catalog.track_ids)
    other = dataclasses.replace(
        serve_catalog, version="other-version", track_ids=serve_catalog.track_ids[: n // 2],
        names=serve_catalog.names[: n // 2], artists=serve_catalog.artists[: n // 2],
        popularity=serve_catalog.popularity[: n // 2], vectors=serve_catalog.vectors[: n // 2])
    seen: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                try:
                    count = conn.execute("SELECT count(*) FROM tracks").fetchone()
                    knn = conn.execute("SELECT count(*) FROM (SELECT 1 FROM tracks ORDER BY "
                                       "vector <=> (SELECT vector FROM tracks LIMIT 1) "
                                       "LIMIT 5) s").fetchone()
                    assert count is not None and knn is not None and knn[0] == 5
                    seen.append(int(count[0]))
                except BaseException as exc:  # noqa: BLE001 (recorded, asserted below)
                    errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    def reads_after(count: int) -> None:
        """Wait until the readers have answered `count` more times (counted, not timed: a fixed
        0.2 s between swaps let a loaded machine skip the middle model entirely)."""
        target = len(seen) + count
        deadline = time.monotonic() + 120
        while len(seen) < target and not errors:
            assert time.monotonic() < deadline, "the readers stalled"
            time.sleep(0.01)

    try:
        reads_after(3)
        index_catalog(url, other)
        reads_after(3)
        index_catalog(url, serve_catalog)
        reads_after(3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    assert set(seen) == {n, n // 2}  # both models were read, nothing in between
    with connect(url) as conn:
        assert active_version(conn) == serve_catalog.version
        staging = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename ~ "
                               "'^(tracks|playlists)_s'").fetchone()
        assert staging == (0,)
        versions = conn.execute("SELECT version, active FROM model_versions ORDER BY version"
                                ).fetchall()
        assert (serve_catalog.version, True) in versions and ("other-version", False) in versions


def test_missing_extension_fails_loudly(pg_server: EmbeddedServer) -> None:
    """A role that may not CREATE EXTENSION on a database without pgvector: a clear error."""
    with psycopg.connect(pg_server.url, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS novector")
        admin.execute("DROP ROLE IF EXISTS plain_user")
        admin.execute("CREATE ROLE plain_user LOGIN NOSUPERUSER")
        admin.execute("CREATE DATABASE novector")
        admin.execute("REVOKE CREATE ON DATABASE novector FROM PUBLIC")
    url = pg_server.url.replace("postgres:@/postgres", "plain_user:@/novector")
    with connect(url) as conn, pytest.raises(StoreError, match="pgvector extension is missing"):
        ensure_extension(conn)


def test_old_pgvector_is_a_clear_error(pg_server: EmbeddedServer) -> None:
    with pytest.raises(StoreError, match=r"pgvector 0\.6\.2 is installed; Dynplayer needs 0\.7"):
        check_pgvector_version("0.6.2")
    check_pgvector_version("0.7.0")
    check_pgvector_version("1.0")
    with connect(pg_server.url) as conn:  # the embedded server's own pgvector passes
        ensure_extension(conn)


# ---- the embedded server's lifecycle ------------------------------------------------------

CLIENT = """
import sys, time
from pathlib import Path
from typing import Any
from dynplayer.store.embedded import EmbeddedServer
server = EmbeddedServer(Path(sys.argv[1]))
server.start()
print(server.pid, flush=True)
time.sleep(600)
"""


@pytest.fixture
def scratch_pgdata() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="dynplayer-test-stale-"))
    yield root / "data"
    pidfile = root / "data" / "postmaster.pid"
    if pidfile.exists():  # never leave a server behind, whatever the test did
        try:
            psutil.Process(int(pidfile.read_text().split()[0])).kill()
        except (psutil.NoSuchProcess, ValueError):
            pass
    shutil.rmtree(root, ignore_errors=True)


def _start_client_and_kill(pgdata: Path) -> tuple[int, int]:
    proc = subprocess.Popen([sys.executable, "-c", CLIENT, str(pgdata)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip().isdigit(), line
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return proc.pid, int(line)


def test_orphan_server_of_a_killed_client_is_reused_then_stopped(scratch_pgdata: Path) -> None:
    client, postmaster = _start_client_and_kill(scratch_pgdata)
    assert psutil.pid_exists(postmaster)  # the orphan the crash left behind
    server = EmbeddedServer(scratch_pgdata)
    server.start()
    try:
        assert server.recovery is not None
        assert client in server.recovery.dead_clients
        assert server.recovery.orphan_server == postmaster
        assert server.pid == postmaster
        with connect(server.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()
    # the dead client no longer counts as a user, so the last live one stopped the server
    psutil.wait_procs([psutil.Process(postmaster)] if psutil.pid_exists(postmaster) else [],
                      timeout=10)
    assert not psutil.pid_exists(postmaster)
    assert not (scratch_pgdata / "postmaster.pid").exists()


def test_stale_pidfile_naming_another_process_is_cleared(scratch_pgdata: Path) -> None:
    _, postmaster = _start_client_and_kill(scratch_pgdata)
    os.kill(postmaster, signal.SIGKILL)  # the server dies too: its postmaster.pid stays
    psutil.wait_procs([psutil.Process(postmaster)], timeout=10)
    time.sleep(0.5)  # let the backends notice their postmaster is gone
    sleeper = subprocess.Popen(["sleep", "60"])  # a live pid that is not postgres
    try:
        pidfile = scratch_pgdata / "postmaster.pid"
        lines = pidfile.read_text().splitlines()
        pidfile.write_text("\n".join([str(sleeper.pid), *lines[1:]]) + "\n")
        server = EmbeddedServer(scratch_pgdata)
        server.start()
        try:
            assert server.recovery is not None and server.recovery.stale_pidfile
            assert server.recovery.orphan_server is None
            assert server.pid not in (postmaster, sleeper.pid)
            with connect(server.url) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
        finally:
            server.stop()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_dead_client_does_not_keep_the_server_running(scratch_pgdata: Path) -> None:
    """A client killed while another one runs leaves its pid in the package's list; the last
    live client must still stop the server when it leaves (it used to stay up for good)."""
    server = EmbeddedServer(scratch_pgdata)
    server.start()
    postmaster = server.pid
    assert postmaster is not None
    try:
        client, joined = _start_client_and_kill(scratch_pgdata)  # joins the running server
        assert joined == postmaster
        assert client in json.loads((scratch_pgdata / HANDLES_FILE).read_text())
    finally:
        server.stop()
    gone, alive = psutil.wait_procs([psutil.Process(postmaster)] if psutil.pid_exists(postmaster)
                                    else [], timeout=20)
    assert not alive, "the server stayed up"
    assert json.loads((scratch_pgdata / HANDLES_FILE).read_text()) == []


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_stopped_by_a_signal_stops_its_embedded_server(
        sig: int, tmp_path: Path, serve_run_dir: Path) -> None:
    """`kill PID` (SIGTERM) on `dynplayer serve` used to leave the embedded PostgreSQL running
    with the pid in its client list (uvicorn raises SIGTERM again after shutting down, and
    Python's default action skips every cleanup); Ctrl-C (SIGINT) was clean. Both must be."""
    import httpx

    port = _free_port()
    env = {**os.environ, "DYNPLAYER_DATA_DIR": str(tmp_path), "DYNPLAYER_VERSION_POLL": "0"}
    env.pop("DYNPLAYER_DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "dynplayer.cli", "serve", str(serve_run_dir),
                             "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    pgdata = tmp_path / "postgres"
    postmaster = None
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "the service did not start"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
        assert json.loads((pgdata / HANDLES_FILE).read_text()) == [proc.pid]
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in out, out
    gone, alive = psutil.wait_procs([psutil.Process(postmaster)] if psutil.pid_exists(postmaster)
                                    else [], timeout=20)
    if alive:
        for p in alive:
            p.kill()
        pytest.fail(f"the embedded PostgreSQL {postmaster} outlived `dynplayer serve`")
    assert json.loads((pgdata / HANDLES_FILE).read_text()) == []
    assert not (pgdata / "postmaster.pid").exists()


def test_buffers_for_holds_the_indexes_within_the_machine() -> None:
    gib = 2**30
    # nothing (or little) indexed: PostgreSQL's default
    assert buffers_for(0, physical_bytes=16 * gib, available_bytes=12 * gib) == BUFFERS_MIN_MB
    # the indexes and a quarter more
    assert buffers_for(gib, physical_bytes=32 * gib, available_bytes=30 * gib) == 1280
    # at most a quarter of the machine, and half of what is free
    assert buffers_for(20 * gib, physical_bytes=16 * gib, available_bytes=12 * gib) == 4096
    assert buffers_for(20 * gib, physical_bytes=64 * gib, available_bytes=4 * gib) == 2048
    # never below the floor, even on a small machine
    assert buffers_for(gib, physical_bytes=gib // 4, available_bytes=gib // 8) == BUFFERS_MIN_MB


def test_the_embedded_server_restarts_with_buffers_for_its_indexes(scratch_pgdata: Path) -> None:
    server = EmbeddedServer(scratch_pgdata)
    server.start()
    try:
        with connect(server.url) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute("CREATE TABLE tracks (id int, v vector(3))")
            conn.execute("INSERT INTO tracks SELECT i, ARRAY[i, 1, 2]::vector FROM "
                         "generate_series(1, 300) i")
            conn.execute("CREATE INDEX tracks_v ON tracks USING hnsw (v vector_cosine_ops)")
            conn.commit()
        assert server.buffers_mb() == BUFFERS_MIN_MB
        before = server.pid
        # another process on the server: never restarted under it
        client, joined = _start_client_and_kill(scratch_pgdata)
        handles = scratch_pgdata / HANDLES_FILE
        sleeper = subprocess.Popen(["sleep", "60"])
        try:
            pids = json.loads(handles.read_text())
            handles.write_text(json.dumps([p if p != client else sleeper.pid for p in pids]))
            assert server.fit_buffers(floor_mb=160) is None
            assert server.pid == before == joined
        finally:
            sleeper.kill()
            sleeper.wait()
        # alone on it: restarted with the buffers, the data kept
        assert server.fit_buffers(floor_mb=160) == 160
        assert server.pid != before
        assert server.buffers_mb() == 160
        with connect(server.url) as conn:
            assert conn.execute("SELECT count(*) FROM tracks").fetchone() == (300,)
            # a restarted server's buffers are empty; the service's prewarm fills them
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_buffercache")
            cached = ("SELECT count(*) FROM pg_buffercache WHERE relfilenode = "
                      "pg_relation_filenode('tracks_v')")
            assert conn.execute(cached).fetchone() == (0,)
            assert "skipped" not in prewarm_indexes(conn)
            pages = conn.execute("SELECT pg_relation_size('tracks_v') / 8192").fetchone()
            assert conn.execute(cached).fetchone() == pages
        assert server.fit_buffers(floor_mb=160) is None  # already enough
    finally:
        server.stop()
    server = EmbeddedServer(scratch_pgdata)  # kept in the data directory for the next start
    server.start()
    try:
        assert server.buffers_mb() == 160
    finally:
        server.stop()


def test_prewarm_skips_what_it_cannot_hold(indexed_url: str, new_database: Any,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from dynplayer.store import buffers as db

    with connect(indexed_url) as conn:
        monkeypatch.setattr(db, "PREWARM_SHARE", 0.0)  # as if the indexes outgrew the buffers
        assert db.prewarm_indexes(conn)["skipped"] == "larger than the buffers"
        monkeypatch.undo()
        done = db.prewarm_indexes(conn)
        assert "skipped" not in done and done["index_mb"] > 0
    with connect(new_database("prewarm_empty")) as conn:  # nothing indexed there
        assert db.prewarm_indexes(conn)["skipped"] == "no HNSW index"
