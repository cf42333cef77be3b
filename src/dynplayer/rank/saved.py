"""The second stage's sources (co-occurrence counts, EASE weights, popularity, artist and album
codes, artist co-occurrence) stored by `dynplayer train-ranker` in RUN_DIR/ranker/sources/, so
that serving, `recommend` and `evaluate` read them instead of fitting them again: EASE alone
took 20.7 of 27 s of a one-shot `recommend` on the MPD slices.

The files are keyed by what the sources were built from: the run's vectors and ids, the
corpus' content hash, `--full`, the co-occurrence window and the EASE lambda. When the key does
not match (the run retrained or updated in place, another corpus) `load_sources` returns None
and the caller builds the sources from the corpus as before. The EASE matrix (V x V float32,
400 MB at the slices' 10,087 tracks) is memory-mapped: a request reads only its seeds' rows, and
API processes on one machine share its pages.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from dynplayer.rank.candidates import Sources
from dynplayer.run import Run, atomic_write_json, unit_rows

SOURCES_DIR = "sources"
FORMAT_VERSION = 2  # 2: EASE over the most popular `ease_items` (ease_cols)
_SPARSE = ("cooc_playlist", "cooc_window", "artist_cooc")
_ARRAYS = ("popularity", "artist", "album")


def sources_key(run: Run, corpus_hash: str | None, window: int,
                ease_lam: float | None, ease_items: int = 20_000) -> dict[str, Any]:
    """What sources built for `run` from its corpus with these settings depend on."""
    h = hashlib.sha256()
    for name in ("vectors.npy", "ids.txt"):
        h.update((run.path / name).read_bytes())
    return {"format_version": FORMAT_VERSION, "vectors": h.hexdigest()[:16],
            "corpus_hash": corpus_hash, "full": bool(run.config.get("full")),
            "window": int(window), "ease_lam": None if ease_lam is None else float(ease_lam),
            "ease_items": int(ease_items)}


def save_sources(ranker_dir: Path, sources: Sources, key: dict[str, Any]) -> None:
    """Write `sources` (all but the run's own vectors) to RANKER_DIR/sources/; the caller
    swaps RANKER_DIR in atomically."""
    d = Path(ranker_dir) / SOURCES_DIR
    d.mkdir(parents=True, exist_ok=True)
    for name in _SPARSE:
        m = getattr(sources, name)
        if m is not None:
            sp.save_npz(d / f"{name}.npz", sp.csr_matrix(m), compressed=False)
    np.savez(d / "arrays.npz", **{name: getattr(sources, name) for name in _ARRAYS})
    if sources.ease is not None:
        np.save(d / "ease.npy", np.ascontiguousarray(sources.ease, dtype=np.float32),
                allow_pickle=False)
        if sources.ease_cols is not None:
            np.save(d / "ease_cols.npy", sources.ease_cols.astype(np.int64), allow_pickle=False)
    atomic_write_json(d / "key.json", {**key, "n_playlists": sources.n_playlists,
                                       "n_items": sources.n_items})


def load_sources(ranker_dir: Path, run: Run, key: dict[str, Any]) -> Sources | None:
    """The stored sources of `run` when they were built with `key`, else None."""
    d = Path(ranker_dir) / SOURCES_DIR
    try:
        stored = json.loads((d / "key.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or {k: stored.get(k) for k in key} != key or \
            stored.get("n_items") != run.vectors.shape[0]:
        return None
    try:
        sparse = {name: sp.load_npz(d / f"{name}.npz").tocsr() if (d / f"{name}.npz").exists()
                  else None for name in _SPARSE}
        with np.load(d / "arrays.npz", allow_pickle=False) as z:
            arrays = {name: z[name] for name in _ARRAYS}
        ease = np.load(d / "ease.npy", mmap_mode="r", allow_pickle=False) \
            if key["ease_lam"] is not None else None
        ease_cols = (np.load(d / "ease_cols.npy", allow_pickle=False)
                     if ease is not None and (d / "ease_cols.npy").exists()
                     else None if ease is None else np.arange(ease.shape[0], dtype=np.int64))
    except (OSError, ValueError, KeyError):
        return None
    if sparse["cooc_playlist"] is None or sparse["cooc_window"] is None:
        return None
    return Sources(vectors=unit_rows(run.vectors), cooc_playlist=sparse["cooc_playlist"],
                   cooc_window=sparse["cooc_window"],
                   popularity=arrays["popularity"].astype(np.float32),
                   artist=arrays["artist"].astype(np.int64),
                   album=arrays["album"].astype(np.int64),
                   n_playlists=int(stored["n_playlists"]), window=int(key["window"]),
                   ease=ease, ease_cols=ease_cols, artist_cooc=sparse["artist_cooc"])


__all__ = ["SOURCES_DIR", "load_sources", "save_sources", "sources_key"]
