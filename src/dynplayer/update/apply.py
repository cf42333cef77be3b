"""`dynplayer update RUN_DIR INPUT...`: new playlists (and the tracks they bring) added to a
trained run without retraining.

What an update does, all or nothing:
  1. reads the new playlists with the `prepare` readers (same one-line errors; a playlist id the
     run already holds is an error, or skipped and counted with --lenient);
  2. merges them into the run's corpus (new playlists are training playlists; new tracks join
     the catalogue with their names and artists; missing names of known tracks are filled; the
     neighbour counts are recounted) and writes it as RUN_DIR/corpus;
  3. folds in vectors (`dynplayer.update.foldin`) for the tracks of the new playlists that have
     none and now occur in >= min_playlists training playlists; they are appended after the
     existing rows of vectors.npy / ids.txt, whose bytes never change;
  4. adds the new playlists (and the new tracks) to the text search space, RUN_DIR/text, when
     the run has a text model: their captions encoded, their track means through the trained
     playlist head; the text model itself is not retrained;
  5. records the update in RUN_DIR/manifest.json (number, model version, inputs, counts, rows).
The new run directory is built beside the old one (unchanged files hard-linked) and exchanged
with it in one rename; with a database URL the new rows are inserted into the live pgvector
tables in one transaction, committed only after the exchange (and the exchange undone when the
commit fails), so a failed or killed update leaves the run and the index as they were.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from dynplayer.data.builder import CorpusBuilder, SkipLog
from dynplayer.data.cooccurrence import neighbour_counts
from dynplayer.data.corpus import TEST, TRAIN, Corpus, load_corpus, save_corpus
from dynplayer.data.sources import read_corpus
from dynplayer.errors import ArtifactError, DataError
from dynplayer.run import (
    Run,
    atomic_save_npy,
    atomic_write_bytes,
    atomic_write_json,
    l2_normalize,
    load_run,
)
from dynplayer.update.foldin import (
    DEFAULT_METHOD,
    DEFAULT_MIN_PLAYLISTS,
    FoldIn,
    check_method,
    fold_in,
    incidence,
)

MANIFEST = "manifest.json"
RUN_CORPUS = "corpus"  # an updated run's own corpus, relative to RUN_DIR


# ---- the manifest -----------------------------------------------------------------------------


def read_manifest(run: Run) -> dict[str, Any]:
    """RUN_DIR/manifest.json, or the implicit one of a run never updated."""
    path = run.path / MANIFEST
    if path.exists():
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            return data
        except (OSError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{path}: unreadable run manifest ({exc})") from exc
    return {"trained_rows": len(run.ids), "folded": [], "updates": []}


# ---- reading: the prepare readers, plus duplicate ids against the run --------------------------


class UpdateBuilder(CorpusBuilder):
    """A CorpusBuilder that also rejects the playlist ids the run already holds."""

    def __init__(self, skip: SkipLog, existing: set[str]) -> None:
        super().__init__(skip)
        self.existing = existing
        self.duplicates = 0
        self.duplicate_examples: list[str] = []

    def add_playlist(self, pid: str, name: str, description: str, tags: list[str],
                     track_idxs: list[int], *, source: str, where: str,
                     line: int | None = None) -> bool:
        if pid in self.existing:
            err = DataError("playlist id already in the run (use --lenient to skip it)",
                            file=where, line=line, playlist=pid, field="pid")
            self.skip.fail(err)  # raises unless --lenient
            self.duplicates += 1
            if len(self.duplicate_examples) < 20:
                self.duplicate_examples.append(str(err))
            return False
        return super().add_playlist(pid, name, description, tags, track_idxs, source=source,
                                    where=where, line=line)


def read_new_playlists(inputs: Sequence[Path], existing: set[str], *, fmt: str = "auto",
                       lenient: bool = False, tracks: Iterable[Path] = (),
                       progress: bool | None = None) -> tuple[Corpus | None, UpdateBuilder]:
    """The new playlists as a corpus of their own (None when every one was a duplicate)."""
    builder = UpdateBuilder(SkipLog(lenient=lenient), existing)
    try:
        delta = read_corpus(inputs, fmt=fmt, lenient=lenient, tracks=tracks, progress=progress,
                            builder=builder)
    except DataError:
        if builder.pids or not builder.duplicates:
            raise
        return None, builder
    return delta, builder


# ---- merging ----------------------------------------------------------------------------------


def merge(base: Corpus, delta: Corpus, window: int) -> tuple[Corpus, np.ndarray]:
    """`base` + `delta`'s playlists (as training playlists) in a new Corpus; returns it and the
    merged track_idx of each delta track. Base rows keep their indices."""
    base.require_split()
    assert base.split is not None and base.heldout is not None and base.selected is not None
    idx_of = {t: i for i, t in enumerate(base.track_ids)}
    track_ids = list(base.track_ids)
    names, artists = list(base.track_names), list(base.artists)
    albums, genres = list(base.albums), [list(g) for g in base.track_genres]
    mapping = np.empty(delta.n_tracks, dtype=np.int64)
    for j, tid in enumerate(delta.track_ids):
        i = idx_of.get(tid)
        if i is None:
            i = idx_of[tid] = len(track_ids)
            track_ids.append(tid)
            names.append(delta.track_names[j])
            artists.append(delta.artists[j])
            albums.append(delta.albums[j])
            genres.append(list(delta.track_genres[j]))
        else:  # the catalogue learns what the new data knows and it did not
            names[i] = names[i] if names[i] is not None else delta.track_names[j]
            artists[i] = artists[i] if artists[i] is not None else delta.artists[j]
            albums[i] = albums[i] if albums[i] is not None else delta.albums[j]
            genres[i] = genres[i] or list(delta.track_genres[j])
        mapping[j] = i
    n_new = len(track_ids) - base.n_tracks
    occ_playlist = np.concatenate([base.occ_playlist,
                                   delta.occ_playlist + base.n_playlists]).astype(np.int32)
    occ_track = np.concatenate([base.occ_track, mapping[delta.occ_track]]).astype(np.int32)
    merged = Corpus(
        pids=[*base.pids, *delta.pids], names=[*base.names, *delta.names],
        descriptions=[*base.descriptions, *delta.descriptions], tags=[*base.tags, *delta.tags],
        sources=[*base.sources, *delta.sources], occ_playlist=occ_playlist,
        occ_position=np.concatenate([base.occ_position, delta.occ_position]).astype(np.int32),
        occ_track=occ_track, track_ids=track_ids, track_names=names, artists=artists,
        albums=albums, track_genres=genres,
        neighbour_count=neighbour_counts(occ_playlist, occ_track, len(track_ids), window),
        selected=np.concatenate([base.selected, np.zeros(n_new, dtype=bool)]),
        split=np.concatenate([base.split, np.full(delta.n_playlists, TRAIN, np.int8)]),
        heldout=np.concatenate([base.heldout, np.zeros(delta.n_occurrences, dtype=bool)]),
        genre_label=np.concatenate([
            base.genre_label if base.genre_label is not None
            else np.full(base.n_tracks, -1, np.int16), np.full(n_new, -1, np.int16)]),
        genre_classes=list(base.genre_classes), manifest=dict(base.manifest))
    return merged, mapping


def learning_playlists(corpus: Corpus, run: Run) -> np.ndarray:
    """The playlists vectors are folded in from: the ones the run trains on (training, plus
    test with `train --full`), never validation."""
    assert corpus.split is not None
    splits = [TRAIN, TEST] if run.config.get("full") else [TRAIN]
    return np.flatnonzero(np.isin(corpus.split, splits)).astype(np.int64)


def table_columns(corpus: Corpus, ids: list[str]) -> np.ndarray:
    """(T,) row of each corpus track in a table with row ids `ids`, -1 where it has none."""
    row = {t: i for i, t in enumerate(ids)}
    return np.array([row.get(t, -1) for t in corpus.track_ids], dtype=np.int64)


def fold_in_corpus(corpus: Corpus, run: Run, candidates: np.ndarray | None, *,
                   min_playlists: int, method: str) -> FoldIn:
    """Fold in vectors for `candidates` (corpus track_idx; None = every track without one)."""
    pl = learning_playlists(corpus, run)
    x = incidence(corpus.occ_playlist, corpus.occ_track, pl, corpus.n_playlists,
                  corpus.n_tracks)
    temperature = float(run.config.get("train", {}).get("temperature", 0.07))
    return fold_in(x, run.vectors, table_columns(corpus, run.ids), min_playlists=min_playlists,
                   method=method, candidates=candidates, temperature=temperature)


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
    from dynplayer.text.model import project_numpy
    from dynplayer.text.search import TextSearcher, compose_playlist_vectors

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
    atomic_save_npy(d / "track_joint.npy", np.vstack([
        searcher.track_joint, project_numpy(searcher.weights, "playlist", new_vectors)
    ]).astype(np.float32))
    import io

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
        "artist": [*searcher.track_artists, *(corpus.artists[tidx[t]] for t in new_track_ids)]})
    meta = json.loads((d / "config.json").read_text())
    meta["vectors_hash"] = vectors_hash
    meta.setdefault("updates", []).append({"update": update_no,
                                           "playlists_added": int(add_rows.shape[0]),
                                           "tracks_added": len(new_track_ids)})
    atomic_write_json(d / "config.json", meta)
    return int(add_rows.shape[0])


# ---- the run directory, exchanged whole -------------------------------------------------------


def _link_tree(src: Path, dst: Path, skip: set[str]) -> None:
    """Hard-link every file of src into dst (directories recreated); copy where links fail."""
    dst.mkdir(exist_ok=True)
    for entry in os.scandir(src):
        if entry.name in skip:
            continue
        target = dst / entry.name
        if entry.is_dir(follow_symlinks=False):
            _link_tree(Path(entry.path), target, set())
        elif entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        else:
            try:
                os.link(entry.path, target)
            except OSError:
                shutil.copy2(entry.path, target)


_RENAME_EXCHANGE = 2


def exchange(a: Path, b: Path) -> None:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); two renames elsewhere."""
    libc_name = ctypes.util.find_library("c")
    fn = getattr(ctypes.CDLL(libc_name, use_errno=True), "renameat2", None) if libc_name \
        else None
    if fn is not None:
        at_fdcwd = -100
        if fn(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)),
              _RENAME_EXCHANGE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (22, 38, 95):  # EINVAL / ENOSYS / EOPNOTSUPP: fall back below
            raise OSError(err, os.strerror(err), str(a))
    side = a.parent / f".{a.name}.swap-{os.getpid()}"
    os.rename(a, side)
    os.rename(b, a)
    os.rename(side, b)


@contextmanager
def staged_run(run_dir: Path, rewritten: set[str]) -> Iterator[Path]:
    """A copy of `run_dir` (hard links, without the `rewritten` entries) to write into; it is
    exchanged with `run_dir` in one rename when the block succeeds, removed otherwise."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.update-", dir=run_dir.resolve().parent))
    try:
        _link_tree(run_dir, tmp, rewritten)
        yield tmp
        exchange(run_dir, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- the update -------------------------------------------------------------------------------


@dataclass
class UpdateReport:
    """What one update did (also what manifest.json records)."""

    update: int
    model_version: str
    inputs: list[str]
    playlists_added: int
    duplicates_skipped: int
    records_skipped: int
    tracks_new: int
    tracks_folded: int
    tracks_waiting: int
    text_playlists_added: int | None
    rows: list[int]  # [first, end) of the rows appended to vectors.npy
    seconds: dict[str, float] = field(default_factory=dict)
    index: dict[str, Any] | None = None
    duplicate_examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def update_run(run_dir: Path, inputs: Sequence[Path], *, fmt: str = "auto",
               lenient: bool = False, tracks: Iterable[Path] = (),
               min_playlists: int | None = None, method: str | None = None,
               database_url: str | None = None, progress: bool | None = None,
               before_commit: Callable[[], None] | None = None) -> UpdateReport:
    """Add the playlists of `inputs` to the run at `run_dir` (see the module docstring).

    `min_playlists` / `method` default to what the run's manifest recorded, else the defaults
    chosen on validation. `before_commit` runs after the exchange, before the database commit
    (the tests use it to fail there).
    """
    t0 = time.perf_counter()
    times: dict[str, float] = {}
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    manifest = read_manifest(run)
    min_playlists = int(min_playlists if min_playlists is not None else
                        manifest.get("min_playlists", DEFAULT_MIN_PLAYLISTS))
    method = str(method if method is not None else manifest.get("method", DEFAULT_METHOD))
    check_method(method, min_playlists)
    base = load_corpus(run.corpus_dir)
    base.require_split()
    existing = set(base.pids)
    delta, builder = read_new_playlists(list(inputs), existing, fmt=fmt, lenient=lenient,
                                        tracks=tracks, progress=progress)
    times["read"] = time.perf_counter() - t0
    update_no = len(manifest.get("updates", [])) + 1
    from dynplayer.store.db import run_version

    if delta is None:  # every playlist was already in the run: nothing changes
        return UpdateReport(update=0, model_version=run_version(run_dir),
                            inputs=[str(p) for p in inputs], playlists_added=0,
                            duplicates_skipped=builder.duplicates,
                            records_skipped=int(sum(builder.skip.counts.values())),
                            tracks_new=0, tracks_folded=0, tracks_waiting=0,
                            text_playlists_added=None, rows=[len(run.ids), len(run.ids)],
                            seconds={"total": round(time.perf_counter() - t0, 3)},
                            duplicate_examples=builder.duplicate_examples)
    t1 = time.perf_counter()
    window = int(base.manifest.get("config", {}).get("window", 10))
    corpus, mapping = merge(base, delta, window)
    n_new_tracks = corpus.n_tracks - base.n_tracks
    new_playlists = np.arange(base.n_playlists, corpus.n_playlists, dtype=np.int64)
    times["merge"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    col = table_columns(corpus, run.ids)
    touched = np.unique(mapping)
    candidates = touched[col[touched] < 0]
    folded = fold_in_corpus(corpus, run, candidates, min_playlists=min_playlists, method=method)
    times["fold_in"] = time.perf_counter() - t2
    new_ids = [corpus.track_ids[t] for t in folded.track_idx]
    n_old = len(run.ids)
    # The existing rows are written back exactly as read (no renormalisation): only rows are
    # added. The fold-in vectors are L2-normalised already.
    vectors = np.concatenate([run.vectors, folded.vectors.astype(run.vectors.dtype)])

    record: dict[str, Any] = {
        "update": update_no, "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "inputs": [str(Path(p).resolve()) for p in inputs], "format": fmt, "lenient": lenient,
        "method": method, "min_playlists": min_playlists,
        "counts": {"playlists_added": int(delta.n_playlists),
                   "occurrences_added": int(delta.n_occurrences),
                   "duplicates_skipped": builder.duplicates,
                   "records_skipped": builder.skip.as_dict(),
                   "tracks_new": int(n_new_tracks), "tracks_folded": len(new_ids),
                   "tracks_waiting": int(candidates.shape[0] - len(new_ids))},
        "rows": [n_old, n_old + len(new_ids)],
    }
    corpus.manifest = dict(base.manifest)
    corpus.manifest.setdefault("updates", []).append(
        {"update": update_no, "inputs": record["inputs"], "counts": record["counts"]})
    from dynplayer.data.prepare import summary_counts

    corpus.manifest["counts"] = summary_counts(corpus)

    parent = run_dir.resolve().parent
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.update-", dir=parent))
    swapped = False
    pending: Any = None
    try:
        t3 = time.perf_counter()
        _link_tree(run_dir, tmp, {RUN_CORPUS, MANIFEST, "vectors.npy", "ids.txt",
                                  "config.json"})
        save_corpus(corpus, tmp / RUN_CORPUS)
        atomic_save_npy(tmp / "vectors.npy", vectors)
        atomic_write_bytes(tmp / "ids.txt", ("\n".join([*run.ids, *new_ids]) + "\n").encode())
        config = dict(run.config)
        config.setdefault("trained_corpus_dir", str(run.corpus_dir.resolve()))
        config["corpus_dir"] = RUN_CORPUS
        config["corpus_hash"] = corpus.manifest.get("content_hash")
        atomic_write_json(tmp / "config.json", config)
        times["write"] = time.perf_counter() - t3
        text_added = None
        if (run_dir / "text").is_dir():
            t4 = time.perf_counter()
            from dynplayer.text.train import vectors_hash

            new_run = Run(path=tmp, vectors=vectors, ids=[*run.ids, *new_ids], config=config)
            text_added = update_text(run_dir, tmp, corpus, new_playlists, new_ids,
                                     folded.vectors, vectors_hash(new_run), update_no)
            record["counts"]["text_playlists_added"] = text_added
            times["text"] = time.perf_counter() - t4
        version = run_version(tmp)
        record["model_version"] = version
        manifest = {**manifest, "method": manifest.get("method", method),
                    "min_playlists": manifest.get("min_playlists", min_playlists)}
        manifest["updates"] = [*manifest.get("updates", []), record]
        atomic_write_json(tmp / MANIFEST, manifest)

        index_report = None
        if database_url is not None:
            t5 = time.perf_counter()
            from dynplayer.store.insert import prepare_insert

            pending = prepare_insert(database_url, run_dir, tmp, old_version=run_version(run_dir),
                                     new_version=version)
            times["index_prepare"] = time.perf_counter() - t5
        exchange(run_dir, tmp)  # tmp now holds the old run
        swapped = True
        if pending is not None:
            t6 = time.perf_counter()
            if before_commit is not None:
                before_commit()
            index_report = pending.commit()
            times["index_commit"] = time.perf_counter() - t6
        elif before_commit is not None:
            before_commit()
    except BaseException:
        if swapped:
            exchange(run_dir, tmp)  # put the old run back
        if pending is not None:
            pending.abort()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    times["total"] = time.perf_counter() - t0
    report = UpdateReport(
        update=update_no, model_version=version, inputs=record["inputs"],
        playlists_added=int(delta.n_playlists), duplicates_skipped=builder.duplicates,
        records_skipped=int(sum(builder.skip.counts.values())) - builder.duplicates,
        tracks_new=int(n_new_tracks), tracks_folded=len(new_ids),
        tracks_waiting=record["counts"]["tracks_waiting"], text_playlists_added=text_added,
        rows=record["rows"], seconds={k: round(v, 3) for k, v in times.items()},
        index=index_report, duplicate_examples=builder.duplicate_examples)
    if progress or (progress is None and sys.stderr.isatty()):
        print(f"update {update_no}: {report.playlists_added:,} playlists, "
              f"{report.tracks_folded:,} tracks folded in", file=sys.stderr)
    return report
