"""`dynplayer prepare`: read sources, count neighbours, select tracks, split, label genres, save."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from dynplayer.config import DataConfig
from dynplayer.data.cooccurrence import neighbour_counts
from dynplayer.data.corpus import TEST, TRAIN, VAL, Corpus, save_corpus
from dynplayer.data.genres import assign_genre_labels, attach_genres, load_artist_genres
from dynplayer.data.selection import RULES, head_tracks, selected_tracks, training_support
from dynplayer.data.sources import read_corpus
from dynplayer.data.split import hold_out, split_playlists
from dynplayer.errors import ConfigError


def check_config(cfg: DataConfig) -> None:
    """One-line errors for values that cannot work (instead of a traceback deep inside)."""
    problems = []
    if cfg.window < 1:
        problems.append(f"window must be >= 1 (got {cfg.window})")
    if cfg.select not in RULES:
        problems.append(f"select must be one of {', '.join(RULES)} (got {cfg.select!r})")
    if not 0.0 < cfg.select_fraction <= 1.0:
        problems.append(f"select_fraction must be in (0, 1] (got {cfg.select_fraction})")
    if cfg.min_playlists < 1:
        problems.append(f"min_playlists must be >= 1 (got {cfg.min_playlists})")
    if cfg.select_min_neighbours is not None and cfg.select_min_neighbours < 0:
        problems.append("select_min_neighbours must be >= 0")
    if cfg.select == "min_neighbours" and cfg.select_min_neighbours is None:
        problems.append("select = min_neighbours needs select_min_neighbours")
    if cfg.select_min_neighbours is not None and cfg.select != "min_neighbours":
        problems.append("select_min_neighbours is read only with select = min_neighbours")
    if cfg.val_fraction < 0 or cfg.test_fraction < 0 or cfg.val_fraction + cfg.test_fraction >= 1:
        problems.append("val_fraction and test_fraction must be >= 0 and sum to less than 1")
    if not 0.0 <= cfg.heldout_fraction <= 1.0:
        problems.append(f"heldout_fraction must be in [0, 1] (got {cfg.heldout_fraction})")
    if cfg.n_genres < 0:
        problems.append("n_genres must be >= 0")
    if problems:
        raise ConfigError("data config: " + "; ".join(problems))


def derive(corpus: Corpus, cfg: DataConfig) -> Corpus:
    """Neighbour counts, track selection, split and held-out tracks, genre classes (in place)."""
    check_config(cfg)
    t0 = time.perf_counter()
    corpus.neighbour_count = neighbour_counts(
        corpus.occ_playlist, corpus.occ_track, corpus.n_tracks, cfg.window
    )
    corpus.split = split_playlists(
        corpus.n_playlists, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction,
        seed=cfg.seed,
    )
    support = (training_support(corpus.occ_playlist, corpus.occ_track, corpus.split,
                                corpus.n_tracks) if cfg.select == "min_playlists" else None)
    corpus.head = head_tracks(corpus.neighbour_count, cfg)
    corpus.selected = (corpus.head.copy() if cfg.select == "top_share"
                       else selected_tracks(corpus.neighbour_count, support, cfg))
    t1 = time.perf_counter()
    # Held-out tracks come from the head whatever the rule: the seed protocol's targets stay
    # the same, so its figures compare across vocabularies (data/selection.py).
    corpus.heldout = hold_out(
        corpus.occ_playlist, corpus.occ_track, corpus.split, corpus.head,
        fraction=cfg.heldout_fraction, seed=cfg.seed,
    )
    assign_genre_labels(corpus, cfg.n_genres)
    corpus.manifest.update(
        {
            "config": asdict(cfg),
            "counts": summary_counts(corpus),
            "timings_s": {"neighbours_and_selection": round(t1 - t0, 3),
                          "split": round(time.perf_counter() - t1, 3)},
        }
    )
    return corpus


def summary_counts(corpus: Corpus) -> dict[str, Any]:
    """What survives selection: tracks, occurrences and playlists with >= 1 selected track."""
    assert corpus.selected is not None and corpus.split is not None
    sel_occ = corpus.selected[corpus.occ_track]
    pl_with = np.bincount(corpus.occ_playlist[sel_occ], minlength=corpus.n_playlists) > 0
    counts: dict[str, Any] = {
        "playlists": corpus.n_playlists,
        "occurrences": corpus.n_occurrences,
        "tracks": corpus.n_tracks,
        "selected_tracks": int(corpus.selected.sum()),
        "selected_occurrences": int(sel_occ.sum()),
        "head_tracks": int(corpus.head.sum()) if corpus.head is not None else None,
        "playlists_with_selected_tracks": int(pl_with.sum()),
        "train_playlists": int((corpus.split == TRAIN).sum()),
        "val_playlists": int((corpus.split == VAL).sum()),
        "test_playlists": int((corpus.split == TEST).sum()),
        "genre_labelled_tracks": int((corpus.genre_label >= 0).sum())
        if corpus.genre_label is not None else 0,
    }
    if corpus.heldout is not None:
        counts["heldout_occurrences"] = int(corpus.heldout.sum())
    return counts


def prepare(
    inputs: Iterable[Path],
    out: Path,
    cfg: DataConfig,
    *,
    fmt: str = "auto",
    lenient: bool = False,
    tracks: Iterable[Path] = (),
    artist_genres: Path | None = None,
) -> Corpus:
    """Read `inputs`, derive everything, and write the corpus atomically to `out`."""
    check_config(cfg)  # before reading: a bad value should not cost a full read
    t0 = time.perf_counter()
    corpus = read_corpus(inputs, fmt=fmt, lenient=lenient, tracks=tracks)
    t_read = time.perf_counter() - t0
    genre_matches = None
    t1 = time.perf_counter()
    if artist_genres is not None:
        genre_matches = attach_genres(corpus, load_artist_genres(artist_genres))
    t_genres = time.perf_counter() - t1
    derive(corpus, cfg)
    corpus.manifest["sources"] = sorted(set(corpus.sources))
    corpus.manifest["input_format"] = fmt
    corpus.manifest["lenient"] = lenient
    corpus.manifest["artist_genres"] = str(artist_genres) if artist_genres else None
    corpus.manifest["artist_genre_matches"] = genre_matches
    corpus.manifest["timings_s"]["read"] = round(t_read, 3)
    corpus.manifest["timings_s"]["artist_genres"] = round(t_genres, 3)
    t2 = time.perf_counter()
    save_corpus(corpus, out)
    # Known only after the manifest is written; kept on the returned object for the benchmark.
    corpus.manifest["timings_s"]["save"] = round(time.perf_counter() - t2, 3)
    return corpus
