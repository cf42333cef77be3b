"""Running the API: `serve_run` (the database, then uvicorn with one or N worker processes)
and the workers' watch on their supervisor, so a `dynplayer serve --workers N` killed with
SIGKILL leaves no workers holding the port."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from dynplayer.settings import Settings
from dynplayer.store.indexing import embedded_url

log = logging.getLogger(__name__)
Echo = Callable[[str], None]


SUPERVISOR_ENV = "DYNPLAYER_SUPERVISOR_PID"


def exit_with_supervisor() -> None:
    """In a worker of `dynplayer serve --workers N` (which exports its pid as
    DYNPLAYER_SUPERVISOR_PID): stop gracefully (SIGTERM to itself) once that process is gone,
    so a supervisor killed with SIGKILL leaves no workers holding the port."""
    supervisor = os.environ.get(SUPERVISOR_ENV, "")
    if not supervisor.isdigit():
        return  # not one of its workers
    # A worker still starting when the supervisor died is orphaned already: it stops at once.

    def watch() -> None:
        while os.getppid() == int(supervisor):
            time.sleep(0.5)
        log.warning("the supervising `dynplayer serve` (pid %s) is gone; stopping", supervisor)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="dynplayer-supervisor-watch").start()


def serve_run(settings: Settings, *, host: str, port: int, echo: Echo = print,
              pgdata: Path | None = None, workers: int = 1) -> None:
    """Start the database if needed, then the API and web page under uvicorn until stopped.

    With `workers` > 1, the run is loaded (and indexed when needed) once here, to fail fast
    and so that the workers never race to index; then uvicorn starts that many worker
    processes, each loading the run from the same settings (passed on as DYNPLAYER_*
    variables) and following the database's model version (`Service.follow_database`).
    """
    import uvicorn

    from dynplayer.errors import ConfigError
    from dynplayer.serve.app import create_app
    from dynplayer.serve.ports import check_port

    if not 1 <= workers <= 64:
        raise ConfigError(f"--workers must be from 1 to 64, got {workers}")
    check_port(host, port)
    server = None
    if settings.backend == "pgvector":
        url, server = embedded_url(settings, pgdata)
        settings = settings.model_copy(update={"database_url": url})
    try:
        app = create_app(settings)
        # Load now, not in the lifespan, so a bad run or database is a one-line error.
        from dynplayer.serve.app import build_services

        services = app.state.services
        for name, detail in build_services(services).items():
            if "indexed" in detail:
                done = detail["indexed"]
                what = f" as catalog {name}" if len(services) > 1 else ""
                echo(f"indexed {done['tracks']:,} tracks and {done['playlists']:,} playlists"
                     f"{what} (the database held another model) in "
                     f"{done['seconds']['total']:.1f}s")
        if len(services) > 1:
            echo(f"catalogs: {', '.join(services)} (default {next(iter(services))}; pick one "
                 "with ?catalog=NAME)")
        check_port(host, port)  # again: loading (or indexing) took a while
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        many = f", {workers} worker processes" if workers > 1 else ""
        echo(f"Dynplayer: http://{shown}:{port}/  (API docs: http://{shown}:{port}/docs{many}; "
             "Ctrl-C stops)")
        if workers == 1:
            uvicorn.run(app, host=host, port=port, log_level="warning")
            return
        # The workers build their own; this process keeps only the database server.
        for service in services.values():
            service.recommender = None
            if service.pool is not None:
                service.pool.close()
                service.pool = None
        os.environ.update({"DYNPLAYER_RUN_DIR": str(Path(str(settings.run_dir)).resolve()),
                           "DYNPLAYER_BACKEND": settings.backend,
                           SUPERVISOR_ENV: str(os.getpid())})  # workers stop when it dies
        if settings.catalog is not None:
            os.environ["DYNPLAYER_CATALOG"] = settings.catalog
        if settings.catalogs:
            os.environ["DYNPLAYER_CATALOGS"] = json.dumps(
                {n: str(Path(p).resolve()) for n, p in settings.catalogs.items()})
        if settings.database_url:
            os.environ["DYNPLAYER_DATABASE_URL"] = settings.database_url
        uvicorn.run("dynplayer.serve.app:create_app", factory=True, host=host, port=port,
                    workers=workers, log_level="warning")
    finally:
        if server is not None:
            server.stop()  # type: ignore[attr-defined]
