"""The update's data side: new playlists read with the `prepare` readers (plus duplicate ids
against the run), merged into the run's corpus, and vectors folded in from the result."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from dynplayer.data.builder import CorpusBuilder, SkipLog
from dynplayer.data.cooccurrence import neighbour_counts
from dynplayer.data.corpus import TEST, TRAIN, Corpus
from dynplayer.data.sources import read_corpus
from dynplayer.errors import DataError
from dynplayer.run import Run
from dynplayer.update.foldin import DEFAULT_CALIBRATE, FoldIn, fold_in, incidence

# ---- reading: the prepare readers, plus duplicate ids against the run --------------------------


class UpdateBuilder(CorpusBuilder):
    """A CorpusBuilder that also rejects the playlist ids the run already holds."""

    def __init__(self, skip: SkipLog, existing: set[str]) -> None:
        super().__init__(skip)
        self.existing = existing
        self.duplicates = 0
        self.duplicate_examples: list[str] = []

    def add_playlist(self, pid: str, name: str, description: str, tags: list[str],
                     track_idxs: list[int], *, source: str, where: str,
                     line: int | None = None) -> bool:
        if pid in self.existing:
            err = DataError("playlist id already in the run (use --lenient to skip it)",
                            file=where, line=line, playlist=pid, field="pid")
            self.skip.fail(err)  # raises unless --lenient
            self.duplicates += 1
            if len(self.duplicate_examples) < 20:
                self.duplicate_examples.append(str(err))
            return False
        return super().add_playlist(pid, name, description, tags, track_idxs, source=source,
                                    where=where, line=line)


def read_new_playlists(inputs: Sequence[Path], existing: set[str], *, fmt: str = "auto",
                       lenient: bool = False, tracks: Iterable[Path] = (),
                       progress: bool | None = None) -> tuple[Corpus | None, UpdateBuilder]:
    """The new playlists as a corpus of their own (None when every one was a duplicate)."""
    builder = UpdateBuilder(SkipLog(lenient=lenient), existing)
    try:
        delta = read_corpus(inputs, fmt=fmt, lenient=lenient, tracks=tracks, progress=progress,
                            builder=builder)
    except DataError:
        if builder.pids or not builder.duplicates:
            raise
        return None, builder
    return delta, builder


# ---- merging ----------------------------------------------------------------------------------


def merge(base: Corpus, delta: Corpus, window: int) -> tuple[Corpus, np.ndarray]:
    """`base` + `delta`'s playlists (as training playlists) in a new Corpus; returns it and the
    merged track_idx of each delta track. Base rows keep their indices."""
    base.require_split()
    assert base.split is not None and base.heldout is not None and base.selected is not None
    idx_of = {t: i for i, t in enumerate(base.track_ids)}
    track_ids = list(base.track_ids)
    names, artists = list(base.track_names), list(base.artists)
    albums, genres = list(base.albums), [list(g) for g in base.track_genres]
    mapping = np.empty(delta.n_tracks, dtype=np.int64)
    for j, tid in enumerate(delta.track_ids):
        i = idx_of.get(tid)
        if i is None:
            i = idx_of[tid] = len(track_ids)
            track_ids.append(tid)
            names.append(delta.track_names[j])
            artists.append(delta.artists[j])
            albums.append(delta.albums[j])
            genres.append(list(delta.track_genres[j]))
        else:  # the catalogue learns what the new data knows and it did not
            names[i] = names[i] if names[i] is not None else delta.track_names[j]
            artists[i] = artists[i] if artists[i] is not None else delta.artists[j]
            albums[i] = albums[i] if albums[i] is not None else delta.albums[j]
            genres[i] = genres[i] or list(delta.track_genres[j])
        mapping[j] = i
    n_new = len(track_ids) - base.n_tracks
    occ_playlist = np.concatenate([base.occ_playlist,
                                   delta.occ_playlist + base.n_playlists]).astype(np.int32)
    occ_track = np.concatenate([base.occ_track, mapping[delta.occ_track]]).astype(np.int32)
    merged = Corpus(
        pids=[*base.pids, *delta.pids], names=[*base.names, *delta.names],
        descriptions=[*base.descriptions, *delta.descriptions], tags=[*base.tags, *delta.tags],
        sources=[*base.sources, *delta.sources], occ_playlist=occ_playlist,
        occ_position=np.concatenate([base.occ_position, delta.occ_position]).astype(np.int32),
        occ_track=occ_track, track_ids=track_ids, track_names=names, artists=artists,
        albums=albums, track_genres=genres,
        neighbour_count=neighbour_counts(occ_playlist, occ_track, len(track_ids), window),
        selected=np.concatenate([base.selected, np.zeros(n_new, dtype=bool)]),
        head=np.concatenate([base.head if base.head is not None else base.selected,
                             np.zeros(n_new, dtype=bool)]),
        split=np.concatenate([base.split, np.full(delta.n_playlists, TRAIN, np.int8)]),
        heldout=np.concatenate([base.heldout, np.zeros(delta.n_occurrences, dtype=bool)]),
        genre_label=np.concatenate([
            base.genre_label if base.genre_label is not None
            else np.full(base.n_tracks, -1, np.int16), np.full(n_new, -1, np.int16)]),
        genre_classes=list(base.genre_classes), manifest=dict(base.manifest))
    return merged, mapping


def learning_playlists(corpus: Corpus, run: Run) -> np.ndarray:
    """The playlists vectors are folded in from: the ones the run trains on (training, plus
    test with `train --full`), never validation."""
    assert corpus.split is not None
    splits = [TRAIN, TEST] if run.config.get("full") else [TRAIN]
    return np.flatnonzero(np.isin(corpus.split, splits)).astype(np.int64)


def table_columns(corpus: Corpus, ids: list[str]) -> np.ndarray:
    """(T,) row of each corpus track in a table with row ids `ids`, -1 where it has none."""
    row = {t: i for i, t in enumerate(ids)}
    return np.array([row.get(t, -1) for t in corpus.track_ids], dtype=np.int64)


def selected_now(corpus: Corpus) -> np.ndarray:
    """(T,) the tracks the corpus' own selection rule (its data config, `data/selection.py`)
    keeps on the corpus as it is now, e.g. after an
    update: the tracks a retrain on it would train."""
    from dynplayer.data.selection import corpus_data_config, selected_tracks, training_support

    cfg = corpus_data_config(corpus.manifest)
    assert corpus.neighbour_count is not None and corpus.split is not None
    support = training_support(corpus.occ_playlist, corpus.occ_track, corpus.split,
                               corpus.n_tracks)
    return selected_tracks(corpus.neighbour_count, support, cfg)


def fold_in_corpus(corpus: Corpus, run: Run, candidates: np.ndarray | None, *,
                   min_playlists: int, method: str,
                   calibrate: float = DEFAULT_CALIBRATE) -> FoldIn:
    """Fold in vectors for `candidates` (corpus track_idx; None = every track without one)."""
    pl = learning_playlists(corpus, run)
    x = incidence(corpus.occ_playlist, corpus.occ_track, pl, corpus.n_playlists,
                  corpus.n_tracks)
    temperature = float(run.config.get("train", {}).get("temperature", 0.07))
    return fold_in(x, run.vectors, table_columns(corpus, run.ids), min_playlists=min_playlists,
                   method=method, candidates=candidates, temperature=temperature,
                   calibrate=calibrate)


