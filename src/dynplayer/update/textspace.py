"""The update's text side: new tracks and searchable playlists appended to RUN_DIR/text
(captions encoded, track means through the trained playlist head; nothing is retrained)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from dynplayer.data.corpus import Corpus
from dynplayer.errors import ArtifactError
from dynplayer.run import atomic_save_npy, atomic_write_bytes, atomic_write_json, l2_normalize

# ---- the text search space --------------------------------------------------------------------


def _counts(corpus: Corpus, playlists: np.ndarray, col_of: np.ndarray,
            n_cols: int) -> sp.csr_matrix:
    """(len(playlists), n_cols) occurrence counts over the columns `col_of` (T,) maps to."""
    row_of = np.full(corpus.n_playlists, -1, dtype=np.int64)
    row_of[playlists] = np.arange(playlists.shape[0])
    r, c = row_of[corpus.occ_playlist], col_of[corpus.occ_track]
    keep = (r >= 0) & (c >= 0)
    m = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (r[keep], c[keep])),
                      shape=(playlists.shape[0], n_cols))
    m.sum_duplicates()
    return m


def update_text(old_dir: Path, new_dir: Path, corpus: Corpus, new_playlists: np.ndarray,
                new_track_ids: list[str], new_vectors: np.ndarray, vectors_hash: str,
                update_no: int) -> int:
    """Extend new_dir/text (hard links of old_dir/text) with the new tracks and playlists;
    returns how many playlists became searchable. Every file written is replaced whole."""
    from dynplayer.text.config import project_numpy
    from dynplayer.text.search import TextSearcher
    from dynplayer.text.space import compose_playlist_vectors, store_projection, wordless

    searcher = TextSearcher.load(old_dir)
    d = new_dir / "text"
    cfg = searcher.cfg
    old_ids = list(searcher.track_ids)
    ids = old_ids + list(new_track_ids)
    col = {t: i for i, t in enumerate(ids)}
    col_of = np.array([col.get(t, -1) for t in corpus.track_ids], dtype=np.int64)
    old_pids = list(searcher.playlist_pids)
    pid_row = {p: i for i, p in enumerate(corpus.pids)}
    old_rows = np.array([pid_row[p] for p in old_pids], dtype=np.int64)
    occ_old = searcher.occ.tocsr()
    n_old_cols = occ_old.shape[1]
    # Old playlists gain only the new tracks' columns; their existing entries stay as they were.
    new_col_of = np.where(col_of >= n_old_cols, col_of - n_old_cols, -1)
    extra = _counts(corpus, old_rows, new_col_of, len(new_track_ids))
    new_counts = _counts(corpus, new_playlists, col_of, len(ids))
    searchable = np.diff(new_counts.indptr) > 0
    add_rows, new_counts = new_playlists[searchable], new_counts[searchable]
    occ = sp.vstack([sp.hstack([occ_old, extra]), new_counts]).tocsr().astype(np.float32)

    if searcher.track_vectors is None:
        raise ArtifactError(f"{old_dir}: the text model has no track vectors beside it")
    track_vectors = np.vstack([searcher.track_vectors, l2_normalize(new_vectors)])
    binary = new_counts.copy()
    binary.data[:] = 1.0
    n = np.maximum(np.diff(binary.indptr), 1).astype(np.float32)
    means = np.asarray(binary @ track_vectors, dtype=np.float32) / n[:, None]
    joint = np.vstack([searcher.joint, project_numpy(searcher.weights, "playlist", means)])
    captions = [corpus.caption(int(p)) for p in add_rows]
    cap_x = np.vstack([searcher.captions_x, searcher.encoder.encode(captions)]).astype(np.float32)
    atomic_save_npy(d / "joint.npy", joint.astype(np.float32))
    atomic_save_npy(d / "captions.npy", cap_x)
    atomic_save_npy(d / "playlists.npy", compose_playlist_vectors(joint, cap_x, cfg))
    # the search space's projection, fitted on the grown rows (as the searcher would on load)
    store_projection(d, compose_playlist_vectors(
        joint.astype(np.float32), cap_x, cfg,
        wordless([*searcher.playlist_captions, *captions])), searcher.weights, cap_x, cfg)
    atomic_save_npy(d / "track_joint.npy", np.vstack([
        searcher.track_joint, project_numpy(searcher.weights, "playlist", new_vectors)
    ]).astype(np.float32))
    buf = io.BytesIO()
    np.savez(buf, data=occ.data.astype(np.float32), indices=occ.indices.astype(np.int32),
             indptr=occ.indptr.astype(np.int64), shape=np.array(occ.shape, dtype=np.int64))
    atomic_write_bytes(d / "occurrences.npz", buf.getvalue())
    atomic_write_bytes(d / "pids.txt",
                       ("\n".join([*old_pids, *(corpus.pids[p] for p in add_rows)]) + "\n")
                       .encode())
    atomic_write_json(d / "captions.json", [*searcher.playlist_captions, *captions])
    tidx = {t: i for i, t in enumerate(corpus.track_ids)}
    atomic_write_json(d / "tracks.json", {
        "track_id": ids,
        "name": [*searcher.track_names, *(corpus.track_names[tidx[t]] for t in new_track_ids)],
        "artist": [*searcher.track_artists, *(corpus.artists[tidx[t]] for t in new_track_ids)],
        "genres": [*searcher.track_genres,
                   *(list(corpus.track_genres[tidx[t]]) for t in new_track_ids)]})
    meta = json.loads((d / "config.json").read_text())
    meta["vectors_hash"] = vectors_hash
    meta.setdefault("updates", []).append({"update": update_no,
                                           "playlists_added": int(add_rows.shape[0]),
                                           "tracks_added": len(new_track_ids)})
    atomic_write_json(d / "config.json", meta)
    return int(add_rows.shape[0])


