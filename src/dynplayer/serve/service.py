"""The served model's lifecycle: load a run (exact or pgvector), reload, and follow the
database's model version so a process never mixes its model with another model's tables."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dynplayer.run as run_identity
from dynplayer.errors import ArtifactError, StoreError
from dynplayer.serve.recommender import (
    ExactRecommender,
    PgvectorRecommender,
    Recommender,
    text_playlists_of,
)
from dynplayer.settings import Settings
from dynplayer.text.api import TextSearcherProtocol

log = logging.getLogger(__name__)


def _warm_search(rec: Recommender) -> None:
    try:
        rec.search_tracks("a", limit=1)
    except Exception as exc:  # a warm-up: the first real search builds it again, or says why
        log.info("the autocomplete was not prepared ahead: %s", exc)
SearcherFactory = Callable[[Path], TextSearcherProtocol | None]


class Service:
    """The loaded model and its resources; `reload` swaps the recommender atomically.

    With the pgvector backend the service also follows the database (`follow_database`, every
    DYNPLAYER_VERSION_POLL seconds from a background thread): when another process (a second
    worker, another API server, `dynplayer index`) has swapped in another model version, this
    process reloads itself if its run directory now holds that version, and otherwise stops
    answering (503, saying why) until the database holds its version again, so it never
    mixes its in-memory model with another model's tables.
    """

    def __init__(self, settings: Settings, recommender: Recommender | None = None,
                 searcher_factory: SearcherFactory | None = None) -> None:
        self.settings = settings
        self.catalog: str | None = settings.catalog  # None: the unnamed catalog
        self.n_tracks: int | None = None  # tracks of the served model (pgvector: the store's)
        self.recommender = recommender
        self.searcher_factory = searcher_factory
        self.server: Any = None  # EmbeddedServer started by this service
        self.pool: Any = None
        self.url: str | None = settings.database_url
        self._lock = threading.Lock()
        self.stale: str | None = None  # why this process must not answer from its model
        self._stale_seen: tuple[str, tuple[tuple[str, int, int], ...]] | None = None
        self._stop_watch = threading.Event()
        self._watcher: threading.Thread | None = None

    def database_url(self) -> str:
        if self.url is None:
            from dynplayer.store.embedded import EmbeddedServer, default_pgdata

            self.server = EmbeddedServer(default_pgdata(self.settings.resolved_data_dir()))
            self.url = self.server.start()
        return self.url

    def run_dir(self) -> Path:
        if self.settings.run_dir is None:
            raise ArtifactError("no run to serve: set DYNPLAYER_RUN_DIR (or `dynplayer serve "
                                "RUN_DIR`)")
        return Path(self.settings.run_dir)

    def build(self, *, reindex: bool = False, index: bool = True) -> dict[str, Any]:
        """Load the run (and index it when the database holds another version, unless
        `index` is false: then that is a StoreError)."""
        from dynplayer.store.buffers import prewarm_indexes
        from dynplayer.store.catalog import build_catalog, load_searcher
        from dynplayer.store.db import active_version, connect, open_pool
        from dynplayer.store.indexing import index_searcher_run

        s = self.settings
        run_dir = self.run_dir()
        searcher = (self.searcher_factory or load_searcher)(run_dir)
        if searcher is not None:
            searcher.encode_query("warm up")  # load the text encoder before the first request
            bridged = getattr(searcher, "bridged", None)
            if bridged is not None:
                bridged("발라드")  # and build the loanword bridge (`text.loanwords`)
        detail: dict[str, Any] = {}
        # How many playlists a text query aggregates: the setting when given, else the text
        # model's own (TextConfig.top_playlists), so serving answers as `dynplayer search` does.
        n_playlists = s.text_playlists if "text_playlists" in s.model_fields_set else \
            text_playlists_of(searcher, s.text_playlists)
        if s.backend == "exact":
            rec: Recommender = ExactRecommender(build_catalog(run_dir, searcher), searcher,
                                                text_playlists=n_playlists)
        else:
            url = self.database_url()
            version = run_identity.run_version(run_dir)
            with connect(url, self.catalog) as conn:
                current = active_version(conn)
            if reindex or current != version:
                if current != version and not (reindex or (s.auto_index and index)):
                    # (The CLI always names a catalog: the unnamed one is filled by a service
                    # with auto-indexing, so the hint for it names one.)
                    fix = f"run `dynplayer index {run_dir} --name {self.catalog}`" \
                        if self.catalog is not None else "set DYNPLAYER_CATALOG=NAME and run " \
                        f"`dynplayer index {run_dir} --name NAME`"
                    raise StoreError(f"the database holds model {current}{self._in()}, not "
                                     f"{version}; {fix}")
                report = index_searcher_run(url, run_dir, searcher, m=s.hnsw_m,
                                            ef_construction=s.hnsw_ef_construction,
                                            name=self.catalog, track_m=s.hnsw_track_m)
                detail["indexed"] = {"tracks": report.tracks, "playlists": report.playlists,
                                     "seconds": report.seconds}
            if self.pool is None:
                self.pool = open_pool(url, min_size=s.pool_min_size, max_size=s.pool_max_size,
                                      timeout=s.pool_timeout,
                                      statement_timeout_ms=s.statement_timeout_ms,
                                      catalog=self.catalog)
            with connect(url, self.catalog) as conn:
                row = conn.execute("SELECT n_tracks FROM model_versions WHERE version = %s",
                                   [version]).fetchone()
                # the HNSW indexes into the buffers now, not page by page in users' requests
                detail["prewarm"] = prewarm_indexes(conn)
            self.n_tracks = None if row is None else int(row[0])
            rec = PgvectorRecommender(self.pool, version, searcher,
                                      text_playlists=n_playlists,
                                      ef_search_min=s.ef_search_min,
                                      ef_search_factor=s.ef_search_factor,
                                      exact_playlists_max=s.exact_playlists_max)
            rec.track_info([])  # the names read now, not in the first request (seconds at 2M)
        from dynplayer.rank.serving import load_serving_ranker

        rec.reranker = load_serving_ranker(run_dir)
        if rec.reranker is not None:
            detail["ranker"] = True
        # The autocomplete's matcher (and over 250k tracks its word index: ~10-45 s at 2M)
        # built before the model answers: in a background thread its pure-Python minute held
        # the GIL under the first requests (text at 8 clients, 1M: p50 1.2 s instead of 40 ms),
        # and in the first search it would stall every request as long.
        _warm_search(rec)
        self.recommender = rec
        self.stale = None
        return detail

    def _in(self) -> str:
        return "" if self.catalog is None else f" in catalog {self.catalog}"

    def reload(self, *, reindex: bool = False) -> dict[str, Any]:
        with self._lock:
            return self.build(reindex=reindex)

    def update(self, playlists: list[dict[str, Any]], tracks: list[dict[str, Any]], *,
               lenient: bool = False) -> dict[str, Any]:
        """`dynplayer update` of the served run with these records (the JSON-lines interchange
        format), inserting into the database with the pgvector backend; then reload. A bad
        record is a DataError naming `playlists[i]` / `tracks[i]` and its field."""
        import json
        import tempfile

        from dynplayer.errors import DataError
        from dynplayer.update.apply import update_run

        with self._lock, tempfile.TemporaryDirectory(prefix="dynplayer-update-") as d:
            files = {}
            for name, records in (("playlists", playlists), ("tracks", tracks)):
                path = Path(d) / f"{name}.jsonl"
                path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                                        for r in records), encoding="utf-8")
                files[name] = path
            url = self.database_url() if self.settings.backend == "pgvector" else None
            try:
                report = update_run(self.run_dir(), [files["playlists"]],
                                    tracks=[files["tracks"]] if tracks else [],
                                    lenient=lenient, database_url=url, progress=False,
                                    catalog=self.catalog)
            except DataError as err:
                if err.file is None or not err.file.startswith(d):
                    raise
                what = "tracks" if err.file == str(files["tracks"]) else "playlists"
                raise DataError(err.reason, file=f"{what}[{(err.line or 1) - 1}]",
                                playlist=err.playlist, field=err.field) from err
            if report.update:
                self.build(index=False)
            return report.as_dict()

    def follow_database(self) -> str | None:
        """Compare the model this process serves with the one the database holds, and act:
        the same -> nothing; another version that this process's run directory now holds (the
        run was retrained and another process indexed it) -> reload, without indexing; another
        run's version -> stop answering until the database holds this process's version
        again. Returns what was done ("reloaded", "stale") or None."""
        from dynplayer.store.db import active_version

        rec, pool = self.recommender, self.pool
        if rec is None or pool is None or isinstance(rec, ExactRecommender):
            return None
        with pool.connection(timeout=self.settings.pool_timeout) as conn:
            held = active_version(conn)
        if held is None or held == rec.version:
            self.stale = None
            return None
        with self._lock:
            if self.recommender is not rec:  # reloaded meanwhile (an admin call)
                return None
            run_dir = self.run_dir()
            # Hashing the run costs a fraction of a second: while stale, only again once the
            # database or the run's files have changed.
            seen = (held, _files_signature(run_dir))
            if self.stale is not None and seen == self._stale_seen:
                return "stale"
            try:
                on_disk: str | None = run_identity.run_version(run_dir)
            except Exception as exc:  # noqa: BLE001 (unreadable, or being rewritten right now)
                log.warning("cannot read the run %s: %s", run_dir, exc)
                on_disk = None
            if on_disk == held:
                try:
                    self.build(index=False)
                except Exception as exc:  # noqa: BLE001 (reported on /readyz, tried again)
                    # Fail loudly: answering from the old model against the new tables is
                    # what this follower exists to prevent. Not remembered in _stale_seen, so
                    # the next poll tries the reload again.
                    log.error("reloading model %s from %s failed: %s", held, run_dir, exc)
                    self.stale = (f"the database now holds model {held}; reloading it from "
                                  f"{run_dir} failed ({type(exc).__name__}: {exc}); this "
                                  f"process stopped answering from model {rec.version}")
                    return "stale"
                return "reloaded"
            self._stale_seen = seen
            self.stale = (f"the database now holds model {held}{self._in()}, indexed from "
                          "another run; "
                          f"this process serves model {rec.version} from {run_dir} (reload or "
                          "restart it to serve the database's model)")
            return "stale"

    def start_watching(self) -> None:
        """Run `follow_database` every DYNPLAYER_VERSION_POLL seconds (pgvector backend, > 0)."""
        poll = self.settings.version_poll
        if poll <= 0 or self.settings.backend != "pgvector" or self._watcher is not None:
            return
        self._stop_watch.clear()
        self._watcher = threading.Thread(target=self._watch, args=(poll,), daemon=True,
                                         name="dynplayer-version-watch")
        self._watcher.start()

    def _watch(self, poll: float) -> None:
        import psycopg
        from psycopg_pool import PoolTimeout

        while not self._stop_watch.wait(poll):
            try:
                self.follow_database()
            except (psycopg.OperationalError, PoolTimeout) as exc:
                # The database is down: /readyz says so (database "unreachable"); try again.
                log.info("model version check: the database is unavailable (%s)", exc)
            except Exception as exc:  # noqa: BLE001 (a fault: stop answering, say why)
                log.exception("model version check failed")
                self.stale = (f"the model follower failed ({type(exc).__name__}: {exc}); this "
                              "process cannot tell which model the database holds and stopped "
                              "answering")

    def stop_watching(self) -> None:
        self._stop_watch.set()
        if self._watcher is not None:
            self._watcher.join(timeout=10)
            self._watcher = None

    def close(self) -> None:
        """Release everything; a later startup (a new lifespan) builds again from settings."""
        self.stop_watching()
        if self.recommender is not None:
            self.recommender.close()
            self.recommender = None
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        if self.server is not None:
            self.server.stop()
            self.server = None
            self.url = self.settings.database_url


def _files_signature(run_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """(path, size, mtime) of the files of a run and its text model: changes when either is
    rewritten."""
    out = []
    for d in (run_dir, run_dir / "text"):
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            if e.is_file():
                st = e.stat()
                out.append((e.path, st.st_size, st.st_mtime_ns))
    return tuple(out)
