"""The catalogue's match index stored with the run, so that `library import` folds the names of
200,000 catalogue tracks once per run rather than on every import.

RUN_DIR/cache/library-match-index.npz holds what `match.Catalogue` needs: the catalogue's ids,
names, artists, popularity and which tracks have a vector, and the keys `match.build_keys`
makes of the names. It is written to a temporary file in the same folder and renamed over the
old one (a reader sees the old index or the new one, never half of one), and is read with
`allow_pickle=False`. Its `key` hashes what it is built from: the run's ids.txt, the corpus's
tracks and occurrences, and the source of the key functions (`library.tagkeys`,
`dynplayer.names`); an index whose key differs (the run retrained or updated, the corpus
prepared again, the normalisation changed), or that cannot be read, is built again and
replaces it. A run directory that cannot be written to is matched all the same, with the index
built in memory.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dynplayer import names as _names
from dynplayer.library import tagkeys
from dynplayer.library.match import Catalogue, MatchKeys
from dynplayer.run import Run, atomic_write_bytes, check_run_dir

INDEX_PATH = Path("cache") / "library-match-index.npz"
INDEX_FORMAT = 1  # the layout below


@dataclass
class IndexLoad:
    catalogue: Catalogue
    built: bool  # False: read from the run
    stored: bool  # the index is in the run (read, or built and written)
    seconds: float


def index_path(run_dir: Path) -> Path:
    return Path(run_dir) / INDEX_PATH


def corpus_dir_of(run_dir: Path) -> Path:
    """The run's corpus folder, from config.json only (the vectors are not read)."""
    d = check_run_dir(run_dir)
    cfg = json.loads((d / "config.json").read_text(encoding="utf-8"))
    return Run(d, np.zeros((0, 0), np.float32), [], cfg).corpus_dir


def index_key(run_dir: Path, corpus_dir: Path | None = None) -> str:
    """What the index is built from, hashed (see the module docstring)."""
    corpus = corpus_dir if corpus_dir is not None else corpus_dir_of(run_dir)
    h = hashlib.sha256(f"dynplayer-library-match-index-{INDEX_FORMAT}".encode())
    for f in (Path(run_dir) / "ids.txt", Path(corpus) / "tracks.parquet",
              Path(corpus) / "occurrences.parquet", Path(tagkeys.__file__),
              Path(_names.__file__)):
        h.update(f.name.encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:32]


def _pack(out: dict[str, np.ndarray], name: str, strings: Sequence[str | None]) -> None:
    """Strings as one UTF-8 blob, their offsets in characters, and which were None."""
    text = "".join(s or "" for s in strings)
    out[f"{name}_text"] = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    out[f"{name}_ends"] = np.cumsum([len(s) if s else 0 for s in strings], dtype=np.int64)
    out[f"{name}_none"] = np.array([s is None for s in strings], dtype=bool)


def _unpack(z: Any, name: str) -> list[str | None]:
    text = z[f"{name}_text"].tobytes().decode("utf-8", "surrogatepass")
    ends = z[f"{name}_ends"].tolist()
    starts = [0, *ends[:-1]]
    out: list[str | None] = [text[a:b] for a, b in zip(starts, ends, strict=True)]
    if ends and ends[-1] != len(text):
        raise ValueError("string offsets do not add up")
    for i in np.flatnonzero(z[f"{name}_none"]).tolist():
        out[i] = None
    return out


def _strs(z: Any, name: str) -> list[str]:
    got = _unpack(z, name)
    if z[f"{name}_none"].any():
        raise ValueError(f"{name}: a missing string")
    return [s or "" for s in got]


def _rows(indptr: np.ndarray, rows: list[int]) -> list[list[int]]:
    bounds = indptr.tolist()
    return [rows[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def encode(cat: Catalogue, key: str) -> bytes:
    """The index file's bytes (an uncompressed .npz: read in a fraction of a second)."""
    k = cat.keys
    artist_list = list(k.by_artist)
    a_id = {a: i for i, a in enumerate(artist_list)}
    arrays: dict[str, np.ndarray] = {
        "meta": np.frombuffer(json.dumps({"format": INDEX_FORMAT, "key": key,
                                          "tracks": len(cat.track_ids)}).encode(), np.uint8),
        "popularity": cat.popularity, "has_vector": cat.has_vector,
        "artist_indptr": np.cumsum([0] + [len(r) for r in k.by_artist.values()],
                                   dtype=np.int64),
        "artist_rows": np.fromiter((i for r in k.by_artist.values() for i in r), np.int32),
        "exact_artist": np.fromiter((a_id[a] for a, _ in k.exact), np.int32, len(k.exact)),
        "exact_indptr": np.cumsum([0] + [len(r) for r in k.exact.values()], dtype=np.int64),
        "exact_rows": np.fromiter((i for r in k.exact.values() for i in r), np.int32),
    }
    for name, strings in (("ids", cat.track_ids), ("names", cat.names),
                          ("artists", cat.artists), ("core", k.core),
                          ("artist_keys", artist_list), ("exact_title", [t for _, t in k.exact])):
        _pack(arrays, name, strings)
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def read_index(path: Path, key: str) -> Catalogue | None:
    """The stored catalogue when `path` holds a whole index built for `key`; else None."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes())
            if meta.get("format") != INDEX_FORMAT or meta.get("key") != key:
                return None
            ids = _strs(z, "ids")
            artist_list = _strs(z, "artist_keys")
            titles = _strs(z, "exact_title")
            a_rows = _rows(z["artist_indptr"], z["artist_rows"].tolist())
            e_rows = _rows(z["exact_indptr"], z["exact_rows"].tolist())
            e_artist = z["exact_artist"].tolist()
            keys = MatchKeys(
                exact={(artist_list[a], t): r
                       for a, t, r in zip(e_artist, titles, e_rows, strict=True)},
                by_artist=dict(zip(artist_list, a_rows, strict=True)), core=_strs(z, "core"))
            cat = Catalogue(ids, _unpack(z, "names"), _unpack(z, "artists"), z["popularity"],
                            z["has_vector"], keys=keys)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeError):
        return None  # missing, truncated or foreign: built again
    if not (len(ids) == meta.get("tracks") == len(cat.names) == len(cat.artists)
            == len(keys.core) == cat.popularity.size == cat.has_vector.size):
        return None
    return cat


def build_catalogue(run_dir: Path, corpus_dir: Path) -> Catalogue:
    """The catalogue built from the corpus, `has_vector` from the run's ids.txt."""
    from dynplayer.data.corpus import load_corpus

    corpus = load_corpus(corpus_dir)
    ids = set((Path(run_dir) / "ids.txt").read_text().splitlines())
    has = np.array([t in ids for t in corpus.track_ids], dtype=bool)
    return Catalogue(list(corpus.track_ids), list(corpus.track_names), list(corpus.artists),
                     corpus.occurrence_count, has)


def load_catalogue(run_dir: Path, *, store: bool = True,
                   build: Callable[[Path, Path], Catalogue] = build_catalogue) -> IndexLoad:
    """The run's catalogue for matching: the stored index when it is current, else built (and
    stored, unless `store` is False or the run cannot be written to)."""
    t0 = time.perf_counter()
    corpus = corpus_dir_of(run_dir)
    key = index_key(run_dir, corpus)
    path = index_path(run_dir)
    cat = read_index(path, key)
    if cat is not None:
        return IndexLoad(cat, False, True, time.perf_counter() - t0)
    cat = build(Path(run_dir), corpus)
    stored = False
    if store:
        try:
            atomic_write_bytes(path, encode(cat, key))
            stored = True
        except OSError:
            pass  # a read-only run: matched all the same
    return IndexLoad(cat, True, stored, time.perf_counter() - t0)


__all__ = ["INDEX_PATH", "IndexLoad", "build_catalogue", "encode", "index_key", "index_path",
           "load_catalogue", "read_index"]
