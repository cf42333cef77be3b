"""`dynplayer index`, `serve`, `demo` and `bench serve`: the serving stage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dynplayer.commands.bench import bench_app


def register(app: typer.Typer) -> None:
    """Add the serving-stage subcommands to the app."""

    @app.command()
    def index(
        run_dir: Annotated[Path, typer.Argument(help="Run directory (dynplayer train)")],
        database_url: Annotated[str | None, typer.Option(
            help="PostgreSQL with pgvector (default: DYNPLAYER_DATABASE_URL, else embedded)")]
        = None,
        m: Annotated[int | None, typer.Option(
            help="HNSW m of both graphs (default: 16 for playlists, 32 for tracks)")] = None,
        ef_construction: Annotated[int | None, typer.Option(
            help="HNSW ef_construction (default 200)")] = None,
        name: Annotated[str | None, typer.Option(
            help="Catalog to load it as; other catalogs stay as they are (default: the run "
                 "directory's name)")] = None,
    ) -> None:
        """Load a run into the vector store as a named catalog: new tables, HNSW, ANALYZE,
        atomic swap."""
        from dynplayer.run import check_run_dir
        from dynplayer.settings import Settings
        from dynplayer.store.indexing import index_run
        from dynplayer.store.names import catalog_name_for, check_catalog_name

        check_run_dir(run_dir)  # before any note about the run's text model
        settings = Settings()
        catalog = check_catalog_name(name) if name is not None else catalog_name_for(run_dir)
        overrides: dict[str, Any] = {"database_url": database_url or settings.database_url,
                                     "catalog": catalog}
        if m is not None:
            overrides["hnsw_m"] = overrides["hnsw_track_m"] = m
        if ef_construction is not None:
            overrides["hnsw_ef_construction"] = ef_construction
        report = index_run(run_dir, settings.model_copy(update=overrides), echo=typer.echo)
        typer.echo(f"indexed model {report.version}: {report.tracks:,} tracks, "
                   f"{report.playlists:,} playlists in {report.seconds['total']:.1f}s "
                   f"(catalog {catalog})")

    @app.command()
    def serve(
        run_dirs: Annotated[list[Path], typer.Argument(
            help="Run directories (dynplayer train), one catalog each; the first is the "
                 "default")],
        host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
        database_url: Annotated[str | None, typer.Option(
            help="PostgreSQL with pgvector (default: DYNPLAYER_DATABASE_URL, else embedded)")]
        = None,
        backend: Annotated[str, typer.Option(help="pgvector | exact (numpy, no database)")]
        = "pgvector",
        workers: Annotated[int, typer.Option(
            help="API worker processes (each loads the model; one database)")] = 1,
        name: Annotated[list[str] | None, typer.Option(
            help="Catalog name of each run, in order (repeat it; default: each run "
                 "directory's name)")] = None,
    ) -> None:
        """Serve the API, its OpenAPI docs (/docs) and the web page for one or more runs."""
        from dynplayer.errors import ConfigError
        from dynplayer.run import check_run_dir
        from dynplayer.serve.workers import serve_run
        from dynplayer.settings import Settings
        from dynplayer.store.names import catalog_name_for, check_catalog_name

        if backend not in ("pgvector", "exact"):
            raise ConfigError(f"--backend must be pgvector or exact, got {backend!r}")
        for run_dir in run_dirs:  # before the database starts or a port is taken
            check_run_dir(run_dir)
        names = [check_catalog_name(n) for n in name or []]
        if names and len(names) != len(run_dirs):
            raise ConfigError(f"--name is given {len(names)} times for {len(run_dirs)} run "
                              "directories: give one per run, in order, or none")
        names = names or [catalog_name_for(r) for r in run_dirs]
        if len(set(names)) < len(names):
            raise ConfigError(f"two runs would be served as the same catalog ({', '.join(names)}"
                              "): name them with --name")
        settings = Settings()
        settings = settings.model_copy(update={
            "run_dir": run_dirs[0], "catalog": names[0],
            "catalogs": dict(zip(names, run_dirs, strict=True)) if len(run_dirs) > 1 else {},
            "backend": backend, "database_url": database_url or settings.database_url})
        serve_run(settings, host=host, port=port, echo=typer.echo, workers=workers)

    @app.command()
    def demo(
        workdir: Annotated[Path | None, typer.Option(
            help="Where the corpus, run and database go (default: <data dir>/demo)")] = None,
        data: Annotated[Path | None, typer.Option(
            help="MPD slices to use (default: ../shared/data/mpd when present, else synthetic)")]
        = None,
        synthetic: Annotated[bool, typer.Option(help="Use the built-in synthetic corpus")]
        = False,
        no_serve: Annotated[bool, typer.Option("--no-serve", help="Stop after indexing")]
        = False,
        host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    ) -> None:
        """data -> train -> text model -> ranker -> evaluate -> index -> serve, on the embedded
        database (each stage reused when it already finished)."""
        from dynplayer.serve.demo import run_demo

        run_demo(workdir=workdir, data=data, synthetic=synthetic, serve=not no_serve,
                 host=host, port=port, echo=typer.echo)

    @bench_app.command("serve")
    def bench_serve(
        run_dir: Annotated[Path, typer.Argument(help="Run directory with a text model")],
        clients: Annotated[int, typer.Option(help="Concurrent clients (1..64)")] = 8,
        duration: Annotated[float, typer.Option(help="Seconds of load (1..300)")] = 60.0,
        queries: Annotated[int, typer.Option(help="Recall sample size (2..100000)")] = 500,
        reliability: Annotated[bool, typer.Option(
            help="Also stop/restart the database and reindex under load")] = True,
        workdir: Annotated[Path | None, typer.Option(
            help="Scratch dir for the benchmark's own embedded database")] = None,
        out: Annotated[Path | None, typer.Option(help="Write the results as JSON")] = None,
        workers: Annotated[int, typer.Option(help="API worker processes (1..8)")] = 1,
        split: Annotated[str, typer.Option(
            help="val | test: the playlists whose seeds and captions measure the HNSW "
                 "overlap and drive the load (choose HNSW settings on val)")] = "test",
        k: Annotated[list[int] | None, typer.Option(
            "-k", "--k", help="Tracks per text request; repeat to load at several (default: "
                              "20 and 50)")] = None,
        against: Annotated[str | None, typer.Option(
            help="Another installation's Python, e.g. \"env PYTHONPATH=old/src python\": its "
                 "API is loaded in windows alternated with this one's, for the ratio of their "
                 "CPU per text request")] = None,
        ab_rounds: Annotated[int, typer.Option(
            help="Windows per API with --against (2..50)")] = 6,
        ab_window: Annotated[float, typer.Option(
            help="Seconds per window with --against (1..120)")] = 8.0,
        track_search: Annotated[bool, typer.Option(
            help="Also time the autocomplete (200 names three ways) in process")] = True,
        store: Annotated[bool, typer.Option(
            help="Measure the store `dynplayer index RUN_DIR` filled (DYNPLAYER_DATABASE_URL "
                 "or the data directory's server) instead of indexing into a scratch "
                 "database; needs --no-reliability")] = False,
    ) -> None:
        """Index time, HNSW recall@50 vs exact, and API latency under concurrent load."""
        import shlex
        import shutil

        from dynplayer.commands.bench import check_writable
        from dynplayer.errors import ConfigError
        from dynplayer.serve.bench import run_bench

        if not 2 <= queries <= 100_000:  # half of them are seed lists, half text queries
            raise ConfigError(f"--queries must be from 2 to 100000, got {queries}")
        ks = tuple(k or (20, 50))
        if not all(1 <= x <= 200 for x in ks):
            raise ConfigError(f"-k must be from 1 to 200, got {', '.join(map(str, ks))}")
        if not 2 <= ab_rounds <= 50:
            raise ConfigError(f"--ab-rounds must be from 2 to 50, got {ab_rounds}")
        if not 1 <= ab_window <= 120:
            raise ConfigError(f"--ab-window must be from 1 to 120 seconds, got {ab_window}")
        command = shlex.split(against) if against is not None else None
        if command is not None and (not command or shutil.which(command[0]) is None):
            raise ConfigError(f"--against: no such command {against!r}")
        if out is not None:
            check_writable(out)
        run_bench(run_dir, clients=clients, duration=duration, n_queries=queries,
                  reliability=reliability, workdir=workdir, out=out, echo=typer.echo,
                  workers=workers, split=split, ks=ks, against=command,
                  ab_rounds=ab_rounds, ab_window=ab_window, store=store,
                  track_search=track_search)
