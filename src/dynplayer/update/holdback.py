"""Hold playlists back from a prepared corpus, to measure an update against a retrain.

`subset` keeps some playlists of a corpus (and optionally drops some tracks' occurrences), with
the split and held-out marks of the kept ones unchanged and the neighbour counts and track
selection derived again from what is left, as `prepare` would on that data.
"""

from __future__ import annotations

import numpy as np

from dynplayer.config import DataConfig, from_dict
from dynplayer.data.cooccurrence import neighbour_counts, select_tracks
from dynplayer.data.corpus import TRAIN, Corpus


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
        cfg = from_dict(DataConfig, corpus.manifest.get("config", {}))
        out.neighbour_count = neighbour_counts(occ_playlist, occ_track, out.n_tracks, cfg.window)
        out.selected = select_tracks(out.neighbour_count, fraction=cfg.select_fraction,
                                     min_neighbours=cfg.select_min_neighbours)
        if out.heldout is not None:
            # Held-out marks stay only on tracks still selected (as `prepare` marks them).
            out.heldout &= out.selected[occ_track]
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


__all__ = ["hold_back", "subset"]
