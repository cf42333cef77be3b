"""The one-command paths: index a run, serve it, and the whole demo pipeline.

`run_demo` calls each stage through its own CLI command in a child process (so each stage's
memory is returned before the next starts) and reuses the output of stages that already finished.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from dynplayer.errors import DynplayerError
from dynplayer.settings import Settings
from dynplayer.store.db import IndexReport

Echo = Callable[[str], None]
REPO_ROOT = Path(__file__).resolve().parents[3]


def _embedded(settings: Settings, pgdata: Path | None = None) -> tuple[str, object | None]:
    """The database URL: the configured one, else a started embedded server (returned too)."""
    if settings.database_url:
        return settings.database_url, None
    from dynplayer.store.embedded import EmbeddedServer, default_pgdata

    server = EmbeddedServer(pgdata or default_pgdata(settings.resolved_data_dir()))
    return server.start(), server


def index_run(run_dir: Path, settings: Settings, *, echo: Echo = print,
              pgdata: Path | None = None) -> IndexReport:
    """Load RUN_DIR (track vectors, names, playlists, text vectors) into the store."""
    from dynplayer.store.catalog import build_catalog, load_searcher
    from dynplayer.store.db import index_catalog

    t0 = time.perf_counter()
    searcher = load_searcher(run_dir)
    if searcher is None:
        echo(f"note: {run_dir} has no text model; playlists are indexed without text vectors")
    catalog = build_catalog(run_dir, searcher)
    echo(f"read run {run_dir} ({time.perf_counter() - t0:.1f}s): model {catalog.version}")
    url, server = _embedded(settings, pgdata)
    try:
        return index_catalog(url, catalog, m=settings.hnsw_m,
                             ef_construction=settings.hnsw_ef_construction, progress=echo)
    finally:
        if server is not None:
            server.stop()  # type: ignore[attr-defined]


def serve_run(settings: Settings, *, host: str, port: int, echo: Echo = print,
              pgdata: Path | None = None, workers: int = 1) -> None:
    """Start the database if needed, then the API and web page under uvicorn until stopped.

    With `workers` > 1, the run is loaded (and indexed when needed) once here, to fail fast
    and so that the workers never race to index; then uvicorn starts that many worker
    processes, each loading the run from the same settings (passed on as DYNPLAYER_*
    variables) and following the database's model version (`Service.follow_database`).
    """
    import os

    import uvicorn

    from dynplayer.errors import ConfigError
    from dynplayer.serve.app import SUPERVISOR_ENV, create_app

    if not 1 <= workers <= 64:
        raise ConfigError(f"--workers must be from 1 to 64, got {workers}")
    server = None
    if settings.backend == "pgvector":
        url, server = _embedded(settings, pgdata)
        settings = settings.model_copy(update={"database_url": url})
    try:
        app = create_app(settings)
        # Load now, not in the lifespan, so a bad run or database is a one-line error.
        service = app.state.service
        detail = service.build()
        if "indexed" in detail:
            done = detail["indexed"]
            echo(f"indexed {done['tracks']:,} tracks and {done['playlists']:,} playlists "
                 f"(the database held another model) in {done['seconds']['total']:.1f}s")
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        many = f", {workers} worker processes" if workers > 1 else ""
        echo(f"Dynplayer: http://{shown}:{port}/  (API docs: http://{shown}:{port}/docs{many}; "
             "Ctrl-C stops)")
        if workers == 1:
            uvicorn.run(app, host=host, port=port, log_level="warning")
            return
        # The workers build their own; this process keeps only the database server.
        service.recommender = None
        if service.pool is not None:
            service.pool.close()
            service.pool = None
        os.environ.update({"DYNPLAYER_RUN_DIR": str(Path(str(settings.run_dir)).resolve()),
                           "DYNPLAYER_BACKEND": settings.backend,
                           SUPERVISOR_ENV: str(os.getpid())})  # workers stop when it dies
        if settings.database_url:
            os.environ["DYNPLAYER_DATABASE_URL"] = settings.database_url
        uvicorn.run("dynplayer.serve.app:create_app", factory=True, host=host, port=port,
                    workers=workers, log_level="warning")
    finally:
        if server is not None:
            server.stop()  # type: ignore[attr-defined]


# ---- the demo --------------------------------------------------------------------------------


def _stage(args: list[str], echo: Echo) -> bool:
    echo(f"$ dynplayer {' '.join(args)}")
    done = subprocess.run([sys.executable, "-m", "dynplayer.cli", *args], check=False)
    return done.returncode == 0


def find_mpd() -> Path | None:
    """`../shared/data/mpd` next to the current directory or next to this repository."""
    for root in (Path.cwd().parent, REPO_ROOT.parent):
        mpd = root / "shared" / "data" / "mpd"
        if mpd.is_dir() and any(mpd.glob("mpd.slice.*")):
            return mpd
    return None


def run_demo(*, workdir: Path | None, data: Path | None, synthetic: bool, serve: bool,
             host: str, port: int, echo: Echo = print) -> Path:
    """data -> train -> evaluate -> text model -> index -> serve; returns the run directory."""
    settings = Settings()
    work = Path(workdir) if workdir else settings.resolved_data_dir() / "demo"
    work.mkdir(parents=True, exist_ok=True)
    pgdata = work / "postgres" if workdir else None
    corpus_dir, run_dir = work / "corpus", work / "run"

    # 1. data
    mpd = None if synthetic else (data or find_mpd())
    if (corpus_dir / "manifest.json").exists():
        echo(f"[data] reusing {corpus_dir}")
    elif mpd is not None:
        args = ["prepare", str(mpd), "--out", str(corpus_dir)]
        genres = Path(mpd).parent / "artist-genres" / "data_w_genres.csv.gz"
        if genres.exists():
            args += ["--artist-genres", str(genres)]
        if not _stage(args, echo):
            raise DynplayerError("the data stage failed (see above)")
    else:
        echo("[data] the built-in synthetic corpus (--synthetic)" if synthetic else
             "[data] no ../shared/data/mpd here: using the built-in synthetic corpus")
        if not _stage(["synth", "--out", str(corpus_dir)], echo):
            raise DynplayerError("the data stage failed (see above)")

    # 2. train
    if (run_dir / "vectors.npy").exists():
        echo(f"[train] reusing {run_dir}")
    elif not _stage(["train", str(corpus_dir), "--out", str(run_dir)], echo):
        raise DynplayerError("the train stage failed (see above)")

    # 3. evaluate
    if (run_dir / "eval").is_dir():
        echo(f"[evaluate] reusing {run_dir / 'eval'}")
    elif not _stage(["evaluate", str(run_dir)], echo):
        echo("[evaluate] note: evaluation failed; the demo continues without it")

    # 4. text model
    if (run_dir / "text").is_dir():
        echo(f"[text] reusing {run_dir / 'text'}")
    elif not _stage(["train-text", str(run_dir)], echo):
        echo("[text] note: text-model training failed; text search is off")

    # 5. index, 6. serve (the server started here is shared with the service)
    url, server = _embedded(settings, pgdata)
    try:
        with_url = settings.model_copy(update={"database_url": url, "run_dir": run_dir})
        report = index_run(run_dir, with_url, echo=echo)
        echo(f"[index] model {report.version}: {report.tracks:,} tracks, {report.playlists:,} "
             f"playlists in {report.seconds['total']:.1f}s")
        if serve:
            serve_run(with_url, host=host, port=port, echo=echo)
        else:
            echo(f"[serve] skipped (--no-serve); start it with: dynplayer serve {run_dir}")
    finally:
        if server is not None:
            server.stop()  # type: ignore[attr-defined]
    return run_dir
