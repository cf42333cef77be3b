"""The normalised playlist corpus every later stage reads, and its atomic Parquet layout.

Layout of a corpus directory:
  playlists.parquet    one row per playlist (row number = playlist_idx): pid, name, description,
                       tags, source, split (0 train, 1 validation, 2 test)
  occurrences.parquet  playlist_idx, position, track_idx, heldout; sorted by playlist, position
  tracks.parquet       one row per track (row number = track_idx): track_id, name, artist, album,
                       genres, occurrence_count, neighbour_count, selected, head, genre_label
  manifest.json        sources, counts, config, skipped records, content hash, genre classes
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from dynplayer.errors import ArtifactError

TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES = {"train": TRAIN, "val": VAL, "validation": VAL, "test": TEST}
FORMAT_VERSION = 1


def normalize_caption(text: str) -> str:
    """Case- and whitespace-normalised caption text; emoji and other symbols are kept."""
    return " ".join(text.lower().split())


@dataclass
class Corpus:
    """Playlists, their ordered track occurrences, and track metadata, as column arrays."""

    pids: list[str]
    names: list[str]
    descriptions: list[str]
    tags: list[list[str]]
    sources: list[str]
    occ_playlist: np.ndarray  # int32, sorted
    occ_position: np.ndarray  # int32
    occ_track: np.ndarray  # int32
    track_ids: list[str]
    track_names: list[str | None]
    artists: list[str | None]
    albums: list[str | None]
    track_genres: list[list[str]]
    neighbour_count: np.ndarray | None = None  # int64 (T,)
    selected: np.ndarray | None = None  # bool (T,)
    split: np.ndarray | None = None  # int8 (P,)
    heldout: np.ndarray | None = None  # bool (O,)
    genre_label: np.ndarray | None = None  # int16 (T,), -1 = no class
    # bool (T,): the seed protocol's vocabulary (top share by neighbours; data/selection.py);
    # held-out tracks come from it. None: a corpus from before it (its `selected` is the head)
    head: np.ndarray | None = None
    genre_classes: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    # ---- sizes -------------------------------------------------------------------------------
    @property
    def n_playlists(self) -> int:
        return len(self.pids)

    @property
    def n_tracks(self) -> int:
        return len(self.track_ids)

    @property
    def n_occurrences(self) -> int:
        return int(self.occ_track.shape[0])

    @property
    def playlist_indptr(self) -> np.ndarray:
        """CSR-style offsets: occurrences of playlist p are [indptr[p], indptr[p+1])."""
        counts = np.bincount(self.occ_playlist, minlength=self.n_playlists)
        indptr = np.zeros(self.n_playlists + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return indptr

    @property
    def occurrence_count(self) -> np.ndarray:
        """Occurrences per track (its popularity)."""
        return np.bincount(self.occ_track, minlength=self.n_tracks).astype(np.int64)

    def caption(self, playlist_idx: int) -> str:
        """Caption = name + description + tags, normalised."""
        i = playlist_idx
        parts = [self.names[i], self.descriptions[i], *self.tags[i]]
        return normalize_caption(" ".join(p for p in parts if p))

    def captions(self) -> list[str]:
        return [self.caption(i) for i in range(self.n_playlists)]

    # ---- derived views -----------------------------------------------------------------------
    def require_split(self) -> None:
        if self.split is None or self.heldout is None or self.selected is None:
            raise ArtifactError(
                "the corpus has no track selection or split; run `dynplayer prepare` (or "
                "`dynplayer split`) first"
            )

    def vocab(self) -> np.ndarray:
        """track_idx of the selected tracks, ascending; row r of any model is vocab()[r]."""
        self.require_split()
        assert self.selected is not None
        return np.flatnonzero(self.selected).astype(np.int64)

    def head_vocab(self) -> np.ndarray:
        """track_idx of the head (the seed protocol's vocabulary), ascending."""
        self.require_split()
        head = self.head if self.head is not None else self.selected
        assert head is not None
        return np.flatnonzero(head).astype(np.int64)

    def playlists_in(self, split: int) -> np.ndarray:
        self.require_split()
        assert self.split is not None
        return np.flatnonzero(self.split == split).astype(np.int64)

    def _vocab_occurrences(
        self, playlists: np.ndarray, part: str, vocab: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(keep mask over occurrences, row in `playlists`, column in `vocab`) of the kept ones.

        part: "all" (every selected occurrence), "visible" (not held out) or "heldout".
        """
        self.require_split()
        assert self.heldout is not None
        col_of = np.full(self.n_tracks, -1, dtype=np.int64)
        col_of[vocab] = np.arange(vocab.shape[0])
        row_of = np.full(self.n_playlists, -1, dtype=np.int64)
        row_of[playlists] = np.arange(playlists.shape[0])
        keep = (row_of[self.occ_playlist] >= 0) & (col_of[self.occ_track] >= 0)
        if part == "visible":
            keep &= ~self.heldout
        elif part == "heldout":
            keep &= self.heldout
        elif part != "all":
            raise ValueError(f"unknown part {part!r}")
        return keep, row_of[self.occ_playlist[keep]], col_of[self.occ_track[keep]]

    def interaction_matrix(
        self,
        playlists: np.ndarray,
        *,
        part: str = "all",
        vocab: np.ndarray | None = None,
        binary: bool = True,
    ) -> sp.csr_matrix:
        """Playlist x vocabulary matrix (rows in the order of `playlists`).

        part: "all" (every selected occurrence), "visible" (not held out) or "heldout".
        Tracks outside the vocabulary are dropped; binary=True collapses repeats to 1.
        """
        vocab = self.vocab() if vocab is None else vocab
        _, rows, cols = self._vocab_occurrences(playlists, part, vocab)
        mat = sp.csr_matrix(
            (np.ones(rows.shape[0], dtype=np.float32), (rows, cols)),
            shape=(playlists.shape[0], vocab.shape[0]),
        )
        mat.sum_duplicates()
        if binary:
            mat.data[:] = 1.0
        return mat

    def sequences(
        self, playlists: np.ndarray, *, part: str = "all", vocab: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Ordered vocabulary rows per playlist as (indptr, cols), positions kept in order."""
        vocab = self.vocab() if vocab is None else vocab
        keep, rows, cols = self._vocab_occurrences(playlists, part, vocab)
        order = np.lexsort((self.occ_position[keep], rows))
        rows, cols = rows[order], cols[order]
        indptr = np.zeros(playlists.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=playlists.shape[0]), out=indptr[1:])
        return indptr, cols


# ---- persistence ---------------------------------------------------------------------------


def _content_hash(corpus: Corpus) -> str:
    h = hashlib.sha256()
    for arr in (corpus.occ_playlist, corpus.occ_position, corpus.occ_track):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update("\x1f".join(corpus.pids).encode())
    h.update("\x1f".join(corpus.track_ids).encode())
    return h.hexdigest()[:16]


def save_corpus(corpus: Corpus, out: Path) -> Path:
    """Write the corpus to `out` atomically: a temporary sibling directory, then a rename.

    A previous corpus at `out` is replaced only once the new one is complete.
    """
    out = Path(out)
    if out.exists() and not (out / "manifest.json").exists() and (
        not out.is_dir() or any(out.iterdir())
    ):
        # Replacing means deleting: never do that to something that is not a corpus.
        raise ArtifactError(f"{out}: exists and is not a corpus directory; refusing to "
                            "replace it (choose another --out or remove it)")
    from dynplayer.run import atomic_directory

    with atomic_directory(out) as tmp:
        _write(corpus, tmp)
    return out


def _write(corpus: Corpus, d: Path) -> None:
    n_p, n_t, n_o = corpus.n_playlists, corpus.n_tracks, corpus.n_occurrences
    split = corpus.split if corpus.split is not None else np.zeros(n_p, dtype=np.int8)
    playlists = pa.table(
        {
            "pid": pa.array(corpus.pids, pa.string()),
            "name": pa.array(corpus.names, pa.string()),
            "description": pa.array(corpus.descriptions, pa.string()),
            "tags": pa.array(corpus.tags, pa.list_(pa.string())),
            "source": pa.array(corpus.sources, pa.string()).dictionary_encode(),
            "split": pa.array(split, pa.int8()),
        }
    )
    heldout = corpus.heldout if corpus.heldout is not None else np.zeros(n_o, dtype=bool)
    occurrences = pa.table(
        {
            "playlist_idx": pa.array(corpus.occ_playlist, pa.int32()),
            "position": pa.array(corpus.occ_position, pa.int32()),
            "track_idx": pa.array(corpus.occ_track, pa.int32()),
            "heldout": pa.array(heldout, pa.bool_()),
        }
    )
    neighbours = (
        corpus.neighbour_count
        if corpus.neighbour_count is not None
        else np.zeros(n_t, dtype=np.int64)
    )
    selected = corpus.selected if corpus.selected is not None else np.zeros(n_t, dtype=bool)
    genre_label = (
        corpus.genre_label if corpus.genre_label is not None else np.full(n_t, -1, np.int16)
    )
    tracks = pa.table(
        {
            "track_id": pa.array(corpus.track_ids, pa.string()),
            "name": pa.array(corpus.track_names, pa.string()),
            "artist": pa.array(corpus.artists, pa.string()),
            "album": pa.array(corpus.albums, pa.string()),
            "genres": pa.array(corpus.track_genres, pa.list_(pa.string())),
            "occurrence_count": pa.array(corpus.occurrence_count, pa.int64()),
            "neighbour_count": pa.array(neighbours, pa.int64()),
            "selected": pa.array(selected, pa.bool_()),
            "head": pa.array(corpus.head if corpus.head is not None else selected, pa.bool_()),
            "genre_label": pa.array(genre_label, pa.int16()),
        }
    )
    pq.write_table(playlists, d / "playlists.parquet")
    pq.write_table(occurrences, d / "occurrences.parquet")
    pq.write_table(tracks, d / "tracks.parquet")
    manifest = dict(corpus.manifest)
    manifest.update(
        {
            "format_version": FORMAT_VERSION,
            "content_hash": _content_hash(corpus),
            "genre_classes": corpus.genre_classes,
            "has_split": corpus.split is not None and corpus.heldout is not None,
        }
    )
    corpus.manifest = manifest
    (d / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


def load_corpus(path: Path) -> Corpus:
    """Read a corpus directory written by `save_corpus` (`dynplayer prepare`)."""
    d = Path(path)
    files = ["manifest.json", "playlists.parquet", "occurrences.parquet", "tracks.parquet"]
    if not d.is_dir():
        raise ArtifactError(f"{d}: corpus directory not found (run `dynplayer prepare` first)")
    missing = [f for f in files if not (d / f).exists()]
    if missing:
        raise ArtifactError(f"{d}: not a corpus directory (missing {', '.join(missing)})")
    try:
        manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
        pl = pq.read_table(d / "playlists.parquet")
        oc = pq.read_table(d / "occurrences.parquet")
        tr = pq.read_table(d / "tracks.parquet")
    except (OSError, ValueError, pa.ArrowException) as exc:
        # json.JSONDecodeError and UnicodeDecodeError are ValueErrors.
        raise ArtifactError(f"{d}: damaged corpus ({exc.__class__.__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}); run "
                            "`dynplayer prepare` again") from exc
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{d}: damaged corpus (manifest.json is not an object)")
    has_split = bool(manifest.get("has_split", False))

    def strs(table: pa.Table, col: str) -> list[Any]:
        return table.column(col).to_pylist()

    corpus = Corpus(
        pids=strs(pl, "pid"),
        names=strs(pl, "name"),
        descriptions=strs(pl, "description"),
        tags=strs(pl, "tags"),
        sources=[str(s) for s in pl.column("source").to_pylist()],
        occ_playlist=oc.column("playlist_idx").to_numpy().astype(np.int32),
        occ_position=oc.column("position").to_numpy().astype(np.int32),
        occ_track=oc.column("track_idx").to_numpy().astype(np.int32),
        track_ids=strs(tr, "track_id"),
        track_names=strs(tr, "name"),
        artists=strs(tr, "artist"),
        albums=strs(tr, "album"),
        track_genres=[g or [] for g in strs(tr, "genres")],
        neighbour_count=tr.column("neighbour_count").to_numpy().astype(np.int64),
        selected=tr.column("selected").to_numpy(zero_copy_only=False).astype(bool)
        if has_split
        else None,
        split=pl.column("split").to_numpy().astype(np.int8) if has_split else None,
        heldout=oc.column("heldout").to_numpy(zero_copy_only=False).astype(bool)
        if has_split
        else None,
        genre_label=tr.column("genre_label").to_numpy().astype(np.int16),
        head=(tr.column("head" if "head" in tr.column_names else "selected")
              .to_numpy(zero_copy_only=False).astype(bool) if has_split else None),
        genre_classes=list(manifest.get("genre_classes", [])),
        manifest=manifest,
    )
    return corpus
