"""Helpers for the library tests: a planted synthetic corpus whose artists and titles are real MPD
names when ../shared/data is there (else the synthetic names), and a stand-in SVD run on it."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from dynplayer.data.corpus import Corpus

SHARED_MPD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mpd"


def real_names(n_artists: int, per_artist: int, slices: int = 60) -> list[tuple[str, list[str]]]:
    """`n_artists` real MPD artists with `per_artist` distinct titles each (empty without the
    data)."""
    files = sorted(SHARED_MPD.glob("mpd.slice.*.json*"))[:slices]
    titles: dict[str, dict[str, None]] = defaultdict(dict)
    for f in files:
        opener = gzip.open if f.suffix == ".gz" else open
        with opener(f, "rt", encoding="utf-8") as fh:
            for p in json.load(fh)["playlists"]:
                for t in p["tracks"]:
                    titles[t["artist_name"]][t["track_name"]] = None
    rich = sorted((a for a, ts in titles.items() if len(ts) >= per_artist
                   and a.isascii() and len(a) > 3), key=lambda a: (-len(titles[a]), a))
    return [(a, list(titles[a])[:per_artist]) for a in rich[:n_artists]]


def relabel_with_real_names(corpus: Corpus) -> bool:
    """Rename the corpus's artists and tracks with real MPD names, in place (one real artist per
    synthetic artist, its tracks the artist's real titles); False without the data."""
    if not SHARED_MPD.is_dir():
        return False
    by_artist: dict[str, list[int]] = defaultdict(list)
    for i, a in enumerate(corpus.artists):
        if a:
            by_artist[a].append(i)
    need = max(len(v) for v in by_artist.values())
    names = real_names(len(by_artist), need)
    if len(names) < len(by_artist):
        return False
    for (_syn, rows), (real, titles) in zip(sorted(by_artist.items()), names, strict=False):
        for j, i in enumerate(rows):
            corpus.artists[i] = real
            corpus.track_names[i] = titles[j]
    corpus.albums = [f"{a} - Greatest" if a else None for a in corpus.artists]
    return True


def planted_genre(corpus: Corpus) -> np.ndarray:
    """The planted genre of each corpus track (from the synthetic artist code k: k % 8)."""
    return np.array([int(a.split()[-1]) % 8 if a and a.startswith("Artist ") else -1
                     for a in corpus.artists])
