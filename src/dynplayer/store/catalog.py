"""What the store and the recommenders serve (`Catalog`), built from a run directory and its
corpus; no database driver needed."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from dynplayer.data.corpus import TRAIN, load_corpus
from dynplayer.run import Run, l2_normalize, load_run, run_version, unit_rows
from dynplayer.store.track_names import TrackNames, track_names
from dynplayer.store.trackmap import TrackMap, project_tracks, track_genres
from dynplayer.text.api import TextSearcherProtocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Catalog:
    """What the store holds for one run: track ids, names, vectors, and searchable playlists."""

    version: str
    run_dir: str
    track_ids: list[str]
    names: list[str | None]
    artists: list[str | None]
    popularity: np.ndarray  # int64 (N,)
    vectors: np.ndarray  # float32 (N, d), L2-normalised
    playlist_pids: list[str]
    playlist_captions: list[str]
    playlist_vectors: np.ndarray  # float32 (P, d), mean track vector, L2-normalised
    playlist_n_tracks: np.ndarray  # int64 (P,)
    text_vectors: np.ndarray | None  # float32 (P, t), the text model's playlist vectors
    genres: list[str | None] | None = None  # one genre per track for the map's colours
    track_map: TrackMap | None = None  # the 2-D map of the most popular tracks


@dataclass(frozen=True)
class IndexReport:
    version: str
    tracks: int
    playlists: int
    seconds: dict[str, float]


def load_searcher(run_dir: Path) -> TextSearcherProtocol | None:
    """The run's text searcher (issue 5), or None when there is no text model for it."""
    if not (Path(run_dir) / "text").is_dir():
        return None
    try:
        module = importlib.import_module("dynplayer.text.search")
    except ImportError:
        log.warning("dynplayer.text.search is not available; text search is off")
        return None
    searcher: TextSearcherProtocol = module.TextSearcher.load(Path(run_dir))
    return searcher


def track_catalog(run_dir: Path, run: Run | None = None,
                  names: TrackNames | None = None) -> Catalog:
    """The tracks of a run (ids, names, artists, popularity, vectors) without its playlists or
    its map: what similar / continue / autocomplete read. The same tracks, names and popularity
    as `build_catalog`, from the corpus' track table alone (a CLI call loads it in a fraction
    of the time). `run`: the run at `run_dir` when already loaded; `names`: its
    `track_names` when already read."""
    run = run or load_run(run_dir)
    if names is None or names.ids != run.ids:
        names = track_names(run.path)
    return Catalog(
        version=run_version(run.path), run_dir=str(Path(run.path).resolve()),
        track_ids=list(run.ids), names=names.names, artists=names.artists,
        popularity=names.popularity,
        vectors=unit_rows(run.vectors), playlist_pids=[], playlist_captions=[],
        playlist_vectors=np.zeros((0, run.vectors.shape[1]), np.float32),
        playlist_n_tracks=np.zeros(0, np.int64), text_vectors=None)


def build_catalog(run_dir: Path, searcher: TextSearcherProtocol | None = None, *,
                  with_map: bool = True) -> Catalog:
    """Track ids/names/vectors of the run and the searchable playlists with their vectors,
    plus (with `with_map`) the track map and the genres that colour it.

    Playlists are the searcher's (row order of its `playlist_vectors`) when there is a text
    model, the corpus' training playlists otherwise.
    """
    run = load_run(run_dir)
    corpus = load_corpus(run.corpus_dir)
    idx_of = {t: i for i, t in enumerate(corpus.track_ids)}
    corpus_rows = np.array([idx_of.get(t, -1) for t in run.ids], dtype=np.int64)
    known = corpus_rows >= 0
    names = [corpus.track_names[r] if r >= 0 else None for r in corpus_rows]
    artists = [corpus.artists[r] if r >= 0 else None for r in corpus_rows]
    popularity = np.zeros(len(run.ids), dtype=np.int64)
    popularity[known] = corpus.occurrence_count[corpus_rows[known]]

    if searcher is not None:
        pid_row = {p: i for i, p in enumerate(corpus.pids)}
        playlists = np.array([pid_row.get(p, -1) for p in searcher.playlist_pids], np.int64)
        pids = list(searcher.playlist_pids)
        captions = list(searcher.playlist_captions)
        text_vectors: np.ndarray | None = np.asarray(searcher.playlist_vectors, np.float32)
    else:
        playlists = corpus.playlists_in(TRAIN)
        pids = [corpus.pids[p] for p in playlists]
        captions = [corpus.caption(int(p)) for p in playlists]
        text_vectors = None

    # Playlist x run-track incidence, then the mean of the member tracks' vectors.
    col_of = np.full(corpus.n_tracks, -1, dtype=np.int64)
    col_of[corpus_rows[known]] = np.flatnonzero(known)
    row_of = np.full(corpus.n_playlists, -1, dtype=np.int64)
    valid = playlists >= 0
    row_of[playlists[valid]] = np.flatnonzero(valid)
    occ_rows = row_of[corpus.occ_playlist]
    keep = (occ_rows >= 0) & (col_of[corpus.occ_track] >= 0)
    n_tracks = np.bincount(occ_rows[occ_rows >= 0], minlength=len(pids)).astype(np.int64)
    incidence = sp.csr_matrix(
        (np.ones(int(keep.sum()), np.float32), (occ_rows[keep], col_of[corpus.occ_track[keep]])),
        shape=(len(pids), len(run.ids)))
    playlist_vectors = l2_normalize(np.asarray(incidence @ run.vectors))
    vectors = unit_rows(run.vectors)
    return Catalog(
        version=run_version(run.path), run_dir=str(Path(run.path).resolve()),
        track_ids=list(run.ids), names=names, artists=artists, popularity=popularity,
        vectors=vectors, playlist_pids=pids, playlist_captions=captions,
        playlist_vectors=playlist_vectors, playlist_n_tracks=n_tracks, text_vectors=text_vectors,
        genres=track_genres(corpus, corpus_rows),
        track_map=project_tracks(vectors, popularity) if with_map else None,
    )
