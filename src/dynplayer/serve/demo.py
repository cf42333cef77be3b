"""The whole demo pipeline: data -> train -> text model -> ranker -> evaluate -> index -> serve.

`run_demo` calls each stage through its own CLI command in a child process (so each stage's
memory is returned before the next starts) and reuses the output of stages that already finished.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from dynplayer.errors import DynplayerError
from dynplayer.serve.workers import serve_run
from dynplayer.settings import Settings
from dynplayer.store.indexing import embedded_url, index_run

Echo = Callable[[str], None]
REPO_ROOT = Path(__file__).resolve().parents[3]


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
    """data -> train -> text model -> ranker -> evaluate -> index -> serve; returns the run
    directory."""
    if serve:  # before minutes of pipeline, not after them
        from dynplayer.serve.ports import check_port

        check_port(host, port)
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

    # 2b. text model (before the ranker and the evaluation: a playlist's name is evidence for
    # both, and a title-only case of the field's protocol is answered by it)
    if (run_dir / "text").is_dir():
        echo(f"[text] reusing {run_dir / 'text'}")
    elif not _stage(["train-text", str(run_dir)], echo):
        echo("[text] note: text-model training failed; text search is off")

    # 2c. the learned second stage (before evaluate, which then shows its row beside the
    # embedding's); kept only when it beats the embedding ranking on validation
    done = [d for d in (run_dir / "ranker", run_dir / "ranker-rejected") if d.is_dir()]
    if done:
        echo(f"[ranker] reusing {done[0]}")
    elif not _stage(["train-ranker", str(run_dir)], echo):
        echo("[ranker] note: the second stage failed; continuations use the embedding ranking")

    # 3. evaluate: both protocols; the whole-catalogue table beside its strongest peers (ALS,
    # the title peer, popularity), the rest of the field's peers are `bench evaluate`'s
    if (run_dir / "eval").is_dir():
        echo(f"[evaluate] reusing {run_dir / 'eval'}")
    elif not _stage(["evaluate", str(run_dir), "--field-peers", "popularity,title,als"], echo):
        echo("[evaluate] note: evaluation failed; the demo continues without it")

    # 4. index, 5. serve (the server started here is shared with the service)
    url, server = embedded_url(settings, pgdata)
    try:
        # A catalog of its own, so a demo never takes down another catalog's service.
        catalog = "synthetic" if mpd is None else "mpd"
        with_url = settings.model_copy(update={"database_url": url, "run_dir": run_dir,
                                               "catalog": catalog})
        report = index_run(run_dir, with_url, echo=echo)
        echo(f"[index] model {report.version}: {report.tracks:,} tracks, {report.playlists:,} "
             f"playlists in {report.seconds['total']:.1f}s")
        if serve:
            serve_run(with_url, host=host, port=port, echo=echo)
        else:
            echo(f"[serve] skipped (--no-serve); start it with: dynplayer serve {run_dir} "
                 f"--name {catalog}")
    finally:
        if server is not None:
            server.stop()  # type: ignore[attr-defined]
    return run_dir
