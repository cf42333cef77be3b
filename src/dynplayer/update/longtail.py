"""The long tail of the corpus itself: vectors folded in, after training, for the tracks below
the selection threshold that occur in >= N training playlists (`train --long-tail`).

The trained rows stay as they are; the folded rows are appended to vectors.npy / ids.txt and
recorded in RUN_DIR/manifest.json (`folded`), with the catalogue reach before and after:
tracks with a vector over tracks in >= 2 playlists of the corpus.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dynplayer.data.corpus import Corpus, load_corpus
from dynplayer.run import Run, atomic_save_npy, atomic_write_bytes, atomic_write_json, load_run
from dynplayer.update.foldin import DEFAULT_METHOD, DEFAULT_MIN_PLAYLISTS


def playlists_per_track(corpus: Corpus) -> np.ndarray:
    """(T,) number of distinct playlists each track occurs in (every split)."""
    key = np.unique(corpus.occ_playlist.astype(np.int64) * corpus.n_tracks + corpus.occ_track)
    return np.bincount(key % corpus.n_tracks, minlength=corpus.n_tracks).astype(np.int64)


def reach(corpus: Corpus, ids: list[str]) -> dict[str, Any]:
    """Catalogue reach: tracks with a vector / tracks in >= 2 playlists."""
    n_pl = playlists_per_track(corpus)
    have = set(ids)
    with_vector = np.array([t in have for t in corpus.track_ids], dtype=bool)
    eligible = n_pl >= 2
    return {"tracks_with_vector": int(with_vector.sum()),
            "tracks_in_2_plus_playlists": int(eligible.sum()),
            "reach": float((with_vector & eligible).sum() / max(int(eligible.sum()), 1))}


def fold_in_long_tail(run_dir: Path, *, min_playlists: int = DEFAULT_MIN_PLAYLISTS,
                      method: str = DEFAULT_METHOD) -> dict[str, Any]:
    """Append folded-in vectors for the run's corpus tracks without one (>= min_playlists
    training playlists). Returns the record written to manifest.json."""
    from dynplayer.update.merge import fold_in_corpus
    from dynplayer.update.rundir import MANIFEST, read_manifest, staged_run

    run = load_run(run_dir)
    corpus = load_corpus(run.corpus_dir)
    corpus.require_split()
    before = reach(corpus, run.ids)
    folded = fold_in_corpus(corpus, run, None, min_playlists=min_playlists, method=method)
    ids = [*run.ids, *(corpus.track_ids[t] for t in folded.track_idx)]
    record = {"what": "long tail (train)", "method": method, "min_playlists": min_playlists,
              "rows": [len(run.ids), len(ids)], "tracks_folded": len(ids) - len(run.ids),
              "reach_before": before, "reach_after": reach(corpus, ids)}
    manifest = read_manifest(run)
    manifest["folded"] = [*manifest.get("folded", []), record]
    manifest.setdefault("method", method)
    manifest.setdefault("min_playlists", min_playlists)
    vectors = np.concatenate([run.vectors, folded.vectors.astype(run.vectors.dtype)])
    with staged_run(Path(run_dir), {"vectors.npy", "ids.txt", MANIFEST}) as tmp:
        atomic_save_npy(tmp / "vectors.npy", vectors)
        atomic_write_bytes(tmp / "ids.txt", ("\n".join(ids) + "\n").encode())
        atomic_write_json(tmp / MANIFEST, manifest)
    return record


def trained_rows(run: Run) -> int:
    """How many leading rows of the run's table were trained (the rest were folded in)."""
    from dynplayer.update.rundir import read_manifest

    return int(read_manifest(run).get("trained_rows", len(run.ids)))
