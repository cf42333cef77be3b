"""Corpus statistics and distribution plots for `dynplayer stats`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dynplayer.data.cooccurrence import _sorted_unique
from dynplayer.data.corpus import Corpus


def _quantiles(x: np.ndarray) -> dict[str, float]:
    if x.shape[0] == 0:
        return {}
    qs = np.percentile(x, [0, 25, 50, 75, 90, 99, 100])
    keys = ["min", "p25", "median", "p75", "p90", "p99", "max"]
    return {k: float(v) for k, v in zip(keys, qs, strict=True)} | {"mean": float(x.mean())}


def corpus_stats(corpus: Corpus) -> dict[str, Any]:
    """Counts (keys `playlists`, `occurrences`, `tracks`, `selected_tracks`) and distributions."""
    pop = corpus.occurrence_count
    lengths = np.diff(corpus.playlist_indptr)
    has_name = np.array([bool(n.strip()) for n in corpus.names])
    has_desc = np.array([bool(d.strip()) for d in corpus.descriptions])
    has_tags = np.array([bool(t) for t in corpus.tags])
    out: dict[str, Any] = {
        "playlists": corpus.n_playlists,
        "occurrences": corpus.n_occurrences,
        "tracks": corpus.n_tracks,
        "selected_tracks": int(corpus.selected.sum()) if corpus.selected is not None else 0,
        "head_tracks": int(corpus.head.sum()) if corpus.head is not None else 0,
    }
    counts = corpus.manifest.get("counts", {})
    for key in ("selected_occurrences", "playlists_with_selected_tracks", "train_playlists",
                "val_playlists", "test_playlists", "heldout_occurrences",
                "genre_labelled_tracks"):
        if key in counts:
            out[key] = counts[key]
    pairs = _sorted_unique(corpus.occ_playlist.astype(np.int64) * corpus.n_tracks
                           + corpus.occ_track)
    playlists_per_track = np.bincount(pairs % max(1, corpus.n_tracks),
                                      minlength=corpus.n_tracks)
    out["tracks_in_5_or_more_playlists"] = int((playlists_per_track >= 5).sum())
    out["tracks_with_5_or_more_occurrences"] = int((pop >= 5).sum())
    out["playlist_length"] = _quantiles(lengths.astype(float))
    out["occurrences_per_track"] = _quantiles(pop.astype(float))
    if corpus.neighbour_count is not None:
        out["neighbours_per_track"] = _quantiles(corpus.neighbour_count.astype(float))
        if corpus.selected is not None and corpus.selected.any():
            out["min_neighbours_selected"] = int(corpus.neighbour_count[corpus.selected].min())
    n = max(1, corpus.n_playlists)
    out["caption_coverage"] = {
        "name": round(float(has_name.mean()), 4) if n else 0.0,
        "description": round(float(has_desc.mean()), 4),
        "tags": round(float(has_tags.mean()), 4),
        "any": round(float((has_name | has_desc | has_tags).mean()), 4),
    }
    out["sources"] = sorted(set(corpus.sources))
    out["skipped_records"] = corpus.manifest.get("skipped", {}).get("total", 0)
    return out


def _loglog_hist(ax: Any, values: np.ndarray, label: str) -> None:
    values = values[values > 0]
    if values.shape[0] == 0:
        return
    counts = np.bincount(values)
    x = np.flatnonzero(counts)
    ax.loglog(x, counts[x], ".", markersize=3)
    ax.set_xlabel(label)
    ax.set_ylabel("number of tracks")
    ax.grid(True, which="both", alpha=0.3)


def write_plots(corpus: Corpus, out_dir: Path) -> dict[str, str]:
    """Popularity (occurrences per track) and neighbour-count distributions, log-log PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    fig, ax = plt.subplots(figsize=(5, 4))
    _loglog_hist(ax, corpus.occurrence_count, "occurrences per track")
    ax.set_title("Track popularity")
    fig.tight_layout()
    p = out_dir / "popularity.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    paths["popularity"] = str(p)
    if corpus.neighbour_count is not None:
        fig, ax = plt.subplots(figsize=(5, 4))
        _loglog_hist(ax, corpus.neighbour_count, "distinct neighbours (window)")
        ax.set_title("Neighbour counts")
        fig.tight_layout()
        p = out_dir / "neighbours.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        paths["neighbours"] = str(p)
    return paths
