"""Track genre labels from Spotify artist genres, and single-label classes for the genre probe.

Rule for artists with several genres: a track takes the genre, among its artist's genres, that
is most frequent over the selected tracks (ties broken alphabetically); only the `n_classes`
most frequent genres are classes, so a track whose genres are all outside them gets no label.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

from dynplayer.data.corpus import Corpus
from dynplayer.errors import DataError


def normalize_artist(name: str) -> str:
    return " ".join(name.casefold().split())


def _parse_genres(field: str) -> list[str]:
    text = field.strip()
    if text in {"", "[]"}:
        return []
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    out = []
    for g in text.split(","):
        g = g.strip().strip("'\"").strip()
        if g:
            out.append(g)
    return out


def load_artist_genres(path: Path) -> dict[str, list[str]]:
    """Map normalised artist name -> genres from `data_w_genres.csv(.gz)`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8")
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read artist genres: {exc}", file=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"artist genres file is not UTF-8 text ({exc.reason})",
                        file=str(path)) from exc
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "genres" not in reader.fieldnames or \
            "artists" not in reader.fieldnames:
        raise DataError("expected a CSV header with 'genres' and 'artists'", file=str(path),
                        line=1, field="genres")
    mapping: dict[str, list[str]] = {}
    for row in reader:
        genres = _parse_genres(row["genres"] or "")
        if genres and row["artists"]:
            mapping.setdefault(normalize_artist(row["artists"]), genres)
    return mapping


def attach_genres(corpus: Corpus, mapping: dict[str, list[str]]) -> int:
    """Fill track genres from the artist mapping where a track has none; returns matches."""
    matched = 0
    for i, artist in enumerate(corpus.artists):
        if artist is None or corpus.track_genres[i]:
            continue
        g = mapping.get(normalize_artist(artist))
        if g:
            corpus.track_genres[i] = list(g)
            matched += 1
    return matched


def assign_genre_labels(corpus: Corpus, n_classes: int = 51) -> None:
    """Single-label genre class per selected track (see module docstring for the rule)."""
    n = corpus.n_tracks
    selected = corpus.selected if corpus.selected is not None else np.ones(n, dtype=bool)
    freq: Counter[str] = Counter()
    for i in np.flatnonzero(selected):
        freq.update(set(corpus.track_genres[i]))
    classes = [g for g, _ in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))[:n_classes]]
    rank = {g: r for r, g in enumerate(classes)}
    labels = np.full(n, -1, dtype=np.int16)
    for i in np.flatnonzero(selected):
        best = min((rank[g] for g in corpus.track_genres[i] if g in rank), default=-1)
        labels[i] = best
    corpus.genre_label = labels
    corpus.genre_classes = classes
