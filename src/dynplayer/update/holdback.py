"""Hold playlists back from a prepared corpus, to measure an update against a retrain.

`subset` keeps some playlists of a corpus (and optionally drops some tracks' occurrences), with
the split and held-out marks of the kept ones unchanged and the neighbour counts and track
selection derived again from what is left, as `prepare` would on that data.
"""

from __future__ import annotations

import numpy as np

from dynplayer.data.cooccurrence import neighbour_counts
from dynplayer.data.corpus import TRAIN, Corpus
from dynplayer.data.selection import (
    corpus_data_config,
    head_tracks,
    selected_tracks,
    training_support,
)


def subset(corpus: Corpus, playlists: np.ndarray, *, drop_tracks: np.ndarray | None = None,
           derive: bool = True) -> Corpus:
    """The corpus of `playlists` (in corpus order); tracks that no longer occur are dropped.

    drop_tracks: track_idx whose occurrences are removed (playlists left empty are dropped).
    derive: recount neighbours and select tracks with the corpus' own data config.
    """
    keep_p = np.zeros(corpus.n_playlists, dtype=bool)
    keep_p[np.asarray(playlists, dtype=np.int64)] = True
    keep_o = keep_p[corpus.occ_playlist]
    if drop_tracks is not None and len(drop_tracks):
        drop = np.zeros(corpus.n_tracks, dtype=bool)
        drop[np.asarray(drop_tracks, dtype=np.int64)] = True
        keep_o &= ~drop[corpus.occ_track]
    keep_p &= np.bincount(corpus.occ_playlist[keep_o], minlength=corpus.n_playlists) > 0
    keep_o &= keep_p[corpus.occ_playlist]
    p_new = np.cumsum(keep_p) - 1
    used = np.zeros(corpus.n_tracks, dtype=bool)
    used[corpus.occ_track[keep_o]] = True
    t_new = np.cumsum(used) - 1
    pl = np.flatnonzero(keep_p).tolist()
    tr = np.flatnonzero(used).tolist()
    occ_playlist = p_new[corpus.occ_playlist[keep_o]].astype(np.int32)
    occ_track = t_new[corpus.occ_track[keep_o]].astype(np.int32)
    out = Corpus(
        pids=[corpus.pids[p] for p in pl], names=[corpus.names[p] for p in pl],
        descriptions=[corpus.descriptions[p] for p in pl], tags=[corpus.tags[p] for p in pl],
        sources=[corpus.sources[p] for p in pl], occ_playlist=occ_playlist,
        occ_position=corpus.occ_position[keep_o].copy(), occ_track=occ_track,
        track_ids=[corpus.track_ids[t] for t in tr],
        track_names=[corpus.track_names[t] for t in tr],
        artists=[corpus.artists[t] for t in tr], albums=[corpus.albums[t] for t in tr],
        track_genres=[corpus.track_genres[t] for t in tr],
        split=corpus.split[keep_p].copy() if corpus.split is not None else None,
        heldout=corpus.heldout[keep_o].copy() if corpus.heldout is not None else None,
        genre_label=corpus.genre_label[used].copy() if corpus.genre_label is not None
        else None,
        genre_classes=list(corpus.genre_classes), manifest=dict(corpus.manifest))
    if derive:
        cfg = corpus_data_config(corpus.manifest)
        out.neighbour_count = neighbour_counts(occ_playlist, occ_track, out.n_tracks, cfg.window)
        out.head = head_tracks(out.neighbour_count, cfg)
        support = (training_support(occ_playlist, occ_track, out.split, out.n_tracks)
                   if out.split is not None else None)
        out.selected = (out.head.copy() if support is None and cfg.select == "min_playlists"
                        else selected_tracks(out.neighbour_count, support, cfg))
        if out.heldout is not None:
            # Held-out marks stay only on head tracks (as `prepare` marks them).
            out.heldout &= out.head[occ_track]
    return out


def hold_back(corpus: Corpus, share: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held back) playlist_idx: `share` of the training playlists held back at random;
    validation and test playlists are always kept."""
    corpus.require_split()
    assert corpus.split is not None
    train = np.flatnonzero(corpus.split == TRAIN)
    rng = np.random.default_rng(seed)
    n_back = int(round(share * train.shape[0]))
    back = np.sort(rng.choice(train, n_back, replace=False))
    kept = np.setdiff1d(np.arange(corpus.n_playlists), back)
    return kept, back


def hold_back_release(corpus: Corpus, share: float, seed: int = 0, *, min_playlists: int = 5,
                      max_playlists: int = 50) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kept, held back, release tracks): tracks picked as "released after the base was
    trained" and every training playlist holding one held back, until `share` of the training
    playlists are. Releases are drawn at random among the selected tracks in `min_playlists`
    to `max_playlists` training playlists (a hit would take a fifth of the corpus with it);
    validation and test playlists are always kept (their release occurrences are targets the
    base cannot know: drop them from the base corpus with `subset(drop_tracks=...)`)."""
    corpus.require_split()
    assert corpus.split is not None and corpus.selected is not None
    is_train = corpus.split[corpus.occ_playlist] == TRAIN
    tr_occ_p, tr_occ_t = corpus.occ_playlist[is_train], corpus.occ_track[is_train]
    support = np.bincount(tr_occ_t, minlength=corpus.n_tracks)
    pool = np.flatnonzero(corpus.selected & (support >= min_playlists)
                          & (support <= max_playlists))
    rng = np.random.default_rng(seed)
    rng.shuffle(pool)
    n_train = int((corpus.split == TRAIN).sum())
    want = int(round(share * n_train))
    order = np.argsort(tr_occ_t, kind="stable")
    starts = np.searchsorted(tr_occ_t[order], np.arange(corpus.n_tracks + 1))
    back = np.zeros(corpus.n_playlists, dtype=bool)
    releases: list[int] = []
    n_back = 0
    for t in pool.tolist():
        if n_back >= want:
            break
        pl = np.unique(tr_occ_p[order[starts[t]:starts[t + 1]]])
        n_back += int((~back[pl]).sum())
        back[pl] = True
        releases.append(t)
    held = np.flatnonzero(back)
    kept = np.setdiff1d(np.arange(corpus.n_playlists), held)
    return kept, held, np.sort(np.asarray(releases, dtype=np.int64))


__all__ = ["hold_back", "hold_back_release", "subset"]
