"""Shared fixtures: a small planted synthetic corpus, the real track and text models trained on
it once per session, the embedded PostgreSQL, and the real data directory."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from dynplayer.config import DataConfig
from dynplayer.data.corpus import Corpus, save_corpus
from dynplayer.data.prepare import derive
from dynplayer.data.synthetic import SyntheticSpec, generate

if TYPE_CHECKING:  # serving fixtures (issue 6)
    import numpy as np

    from dynplayer.store.catalog import Catalog
    from dynplayer.store.embedded import EmbeddedServer
    from dynplayer.text.api import SearchResult
    from dynplayer.text.search import TextSearcher

# The suite's own data directory (what the embedded server, the demo and the run-version memo
# write by default), never the user's; tests that need another set theirs.
_DATA_DIR = tempfile.mkdtemp(prefix="dynplayer-tests-data-")
os.environ["DYNPLAYER_DATA_DIR"] = _DATA_DIR
atexit.register(shutil.rmtree, _DATA_DIR, True)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """`cli("search", RUN, "jazz")` -> (exit code, stdout, stderr): `dynplayer` in process."""
    import sys

    from dynplayer.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["dynplayer", *args])
        with pytest.raises(SystemExit) as info:
            main()
        out = capsys.readouterr()
        return int(info.value.code or 0), out.out, out.err

    return run


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data`; tests that need it skip with a clear reason when it is absent."""
    if not (SHARED_DATA / "mpd").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


def make_synthetic(n_playlists: int = 600, n_tracks: int = 400, seed: int = 0,
                   **data_overrides: object) -> Corpus:
    corpus = generate(SyntheticSpec(n_playlists=n_playlists, n_tracks=n_tracks, seed=seed))
    cfg = DataConfig(select="top_share", select_fraction=1.0, seed=seed)
    for k, v in data_overrides.items():
        cfg = cfg.__class__(**{**cfg.__dict__, k: v})
    derive(corpus, cfg)
    return corpus


@pytest.fixture(scope="session")
def synthetic_corpus() -> Corpus:
    """600 planted playlists over 400 tracks (8 genres x 4 moods), all tracks selected."""
    return make_synthetic()


@pytest.fixture(scope="session")
def synthetic_corpus_dir(tmp_path_factory: pytest.TempPathFactory,
                         synthetic_corpus: Corpus) -> Path:
    out = tmp_path_factory.mktemp("corpus") / "synthetic"
    save_corpus(synthetic_corpus, out)
    return out


# ---- The real models, trained once per session on the synthetic corpus (seconds) ----------


@pytest.fixture(scope="session")
def track_run_dir(tmp_path_factory: pytest.TempPathFactory, synthetic_corpus_dir: Path) -> Path:
    """A run of the real track model (`dynplayer train` with its default config) on the planted
    synthetic corpus, without a text model. Shared by the session: copy it before changing it."""
    from dynplayer.train.config import TrainConfig
    from dynplayer.train.loop import train_run

    out = tmp_path_factory.mktemp("run") / "track"
    train_run(synthetic_corpus_dir, out, TrainConfig(), progress=False)
    return out


@pytest.fixture(scope="session")
def copy_run() -> Any:
    """`copy_run(run_dir, dest)`: a private copy of a session run, for tests that change it."""
    import shutil

    def copy(run_dir: Path, dest: Path) -> Path:
        shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns("checkpoint.pt", "eval"))
        return dest

    return copy


@pytest.fixture(scope="session")
def serve_run_dir(tmp_path_factory: pytest.TempPathFactory, track_run_dir: Path,
                  copy_run: Any) -> Path:
    """`track_run_dir` plus the real text model (`dynplayer train-text` defaults: the USE
    encoder, hybrid retrieval, pseudo-relevance feedback): what `dynplayer serve` serves."""
    from dynplayer.text.model import TextConfig
    from dynplayer.text.train import train_text

    out = copy_run(track_run_dir, tmp_path_factory.mktemp("run") / "served")
    train_text(out, TextConfig())
    return out


@pytest.fixture(scope="session")
def text_searcher(serve_run_dir: Path) -> TextSearcher:
    """The served run's text searcher, loaded once (apps built with `searcher_factory` share
    it instead of loading the encoder again)."""
    from dynplayer.text.search import TextSearcher

    return TextSearcher.load(serve_run_dir)


# ---- Serving (issue 6): one embedded PostgreSQL per session ---------------------------------


SERVE_SEARCHER_DIM = 256


class StandinSearcher:
    """Implements `dynplayer.text.api.TextSearcherProtocol` with a hashed bag-of-words encoder:
    a deterministic stand-in (not a mock) whose captions name the planted genres and moods.
    Only for tests about something else than the text model, which say so; the served run's
    real text model is the `text_searcher` fixture."""

    def __init__(self, corpus: Corpus, run_ids: list[str], top_playlists: int = 20) -> None:
        import numpy as np
        import scipy.sparse as sp

        from dynplayer.data.corpus import TRAIN

        rows = corpus.playlists_in(TRAIN)
        self.playlist_pids = [corpus.pids[p] for p in rows]
        self.playlist_captions = [corpus.caption(int(p)) for p in rows]
        self.track_ids = list(run_ids)
        self.top_playlists = top_playlists
        # A little seeded jitter breaks the exact ties of identical captions, so the top
        # playlists are one well-defined set for every implementation.
        jitter = np.random.default_rng(0).normal(0, 1e-3, (rows.shape[0], SERVE_SEARCHER_DIM))
        vectors = np.stack([self._encode(c) for c in self.playlist_captions]) + jitter
        self._vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(
            np.float32)
        col = {t: i for i, t in enumerate(run_ids)}
        track_col = np.array([col.get(t, -1) for t in corpus.track_ids], dtype=np.int64)
        row_of = np.full(corpus.n_playlists, -1, dtype=np.int64)
        row_of[rows] = np.arange(rows.shape[0])
        r, c = row_of[corpus.occ_playlist], track_col[corpus.occ_track]
        keep = (r >= 0) & (c >= 0)
        self.occ = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (r[keep], c[keep])),
                                 shape=(rows.shape[0], len(run_ids)))

    @staticmethod
    def _encode(text: str) -> np.ndarray:
        import zlib

        import numpy as np

        v = np.zeros(SERVE_SEARCHER_DIM, dtype=np.float32)
        for token in text.lower().split():
            v[zlib.crc32(token.encode()) % SERVE_SEARCHER_DIM] += 1.0
        return v / max(float(np.linalg.norm(v)), 1e-12)

    @property
    def playlist_vectors(self) -> np.ndarray:
        return self._vectors

    def encode_query(self, text: str) -> np.ndarray:
        from dynplayer.errors import QueryError

        if not text.strip():
            raise QueryError("the query is empty")
        return self._encode(text)

    def aggregate(self, playlist_rows: np.ndarray, similarities: np.ndarray, k: int,
                  query: str = "") -> SearchResult:
        import numpy as np

        from dynplayer.text.api import PlaylistHit, SearchResult, TrackHit

        rows = np.asarray(playlist_rows, dtype=np.int64)
        w = np.clip(np.asarray(similarities, dtype=np.float32), 0.0, None)
        hits = [PlaylistHit(self.playlist_pids[r], self.playlist_captions[r], float(s))
                for r, s in zip(rows, similarities, strict=True)]
        sub = self.occ[rows]
        scores = np.asarray(sub.T @ w).ravel()
        top = [int(t) for t in np.lexsort((np.arange(scores.shape[0]), -scores))[:k]
               if scores[t] > 0]
        dense = np.asarray(sub[:, top].todense())
        tracks = [TrackHit(self.track_ids[t], float(scores[t]),
                           [hits[i] for i in np.flatnonzero(dense[:, j] > 0)])
                  for j, t in enumerate(top)]
        return SearchResult(query=query, playlists=hits, tracks=tracks)

    def search(self, text: str, k: int = 20) -> SearchResult:
        import numpy as np

        sims = self._vectors @ self.encode_query(text)
        rows = np.lexsort((np.arange(sims.shape[0]), -sims))[: self.top_playlists]
        return self.aggregate(rows, sims[rows], k, query=text)


def make_svd_run(corpus_dir: Path, run_dir: Path, dim: int = 16) -> Path:
    """A stand-in run (RUN_DIR contract) of SVD vectors of the training matrix, made in
    milliseconds: only for tests about something else than the model (several model versions
    following each other, say), which say so."""
    import numpy as np
    from scipy.sparse.linalg import svds

    from dynplayer.data.corpus import TRAIN, load_corpus
    from dynplayer.run import atomic_write_json, save_vectors

    corpus = load_corpus(corpus_dir)
    vocab = corpus.vocab()
    x = corpus.interaction_matrix(corpus.playlists_in(TRAIN), vocab=vocab).astype(np.float64)
    _, s, vt = svds(x, k=dim, v0=np.random.default_rng(0).standard_normal(min(x.shape)))
    save_vectors(run_dir, (vt.T * np.sqrt(s)).astype(np.float32),
                 [corpus.track_ids[t] for t in vocab])
    atomic_write_json(run_dir / "config.json", {"model": "svd", "dim": dim,
                                                "corpus_dir": str(Path(corpus_dir).resolve())})
    return run_dir


@pytest.fixture(scope="session")
def make_svd_run_factory() -> Any:
    """`make_svd_run(corpus_dir, run_dir, dim)` (a stand-in run) for test modules."""
    return make_svd_run


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedServer]:
    """The real embedded PostgreSQL + pgvector in a temp dir, started once per session."""
    import shutil
    import tempfile

    from dynplayer.store.embedded import EmbeddedServer

    # Not under pytest's basetemp: pytest resets it to mode 0700, and the server runs as the
    # unprivileged `embedded_postgres` user when the tests run as root.
    root = Path(tempfile.mkdtemp(prefix="dynplayer-test-pg-"))
    server = EmbeddedServer(root / "data", delete_on_stop=True)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def new_database(pg_server: EmbeddedServer) -> Any:
    """`new_database(name)`: a fresh, empty database on the session server; returns its URL.
    Tests that index something else than the session's model use one, so they never change
    what `indexed_url` serves to the other tests."""
    import psycopg
    from psycopg import sql

    def make(name: str) -> str:
        with psycopg.connect(pg_server.url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        assert "@/postgres?" in pg_server.url, pg_server.url
        return pg_server.url.replace("@/postgres?", f"@/{name}?")

    return make


@pytest.fixture(scope="session")
def serve_catalog(serve_run_dir: Path, text_searcher: TextSearcher) -> Catalog:
    from dynplayer.store.catalog import build_catalog

    return build_catalog(serve_run_dir, text_searcher)


@pytest.fixture(scope="session")
def indexed_url(pg_server: EmbeddedServer, serve_catalog: Catalog) -> str:
    """The session server's URL with the served run (track and text model) indexed."""
    from dynplayer.store.db import index_catalog

    index_catalog(pg_server.url, serve_catalog)  # the defaults, as every reindex in the tests
    return pg_server.url


@pytest.fixture(scope="session")
def live_server() -> Any:
    """`with live_server(app) as url:` runs the app under uvicorn on 127.0.0.1."""
    return _live_server


@contextlib.contextmanager
def _live_server(app: Any) -> Iterator[str]:
    """Run an ASGI app under uvicorn on 127.0.0.1 (a free port) in a thread; yields its URL."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120  # generous: a loaded machine starts slowly, not wrongly
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
