"""`dynplayer update RUN_DIR INPUT...`: new playlists (and the tracks they bring) added to a
trained run without retraining.

What an update does, all or nothing:
  1. reads the new playlists with the `prepare` readers (same one-line errors; a playlist id the
     run already holds is an error, or skipped and counted with --lenient);
  2. merges them into the run's corpus (new playlists are training playlists; new tracks join
     the catalogue with their names and artists; missing names of known tracks are filled; the
     neighbour counts are recounted) and writes it as RUN_DIR/corpus;
  3. folds in vectors (`dynplayer.update.foldin`) for the tracks of the new playlists that have
     none, are eligible (`selected`: the corpus' selection rule keeps them on the updated data,
     as a retrain would; `any`: every track) and now occur in >= min_playlists training
     playlists; they are appended after the existing rows of vectors.npy / ids.txt, whose bytes
     never change;
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

import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from dynplayer.data.corpus import load_corpus, save_corpus
from dynplayer.run import (
    Run,
    atomic_save_npy,
    atomic_write_bytes,
    atomic_write_json,
    load_run,
    run_version,
    staging_directory,
)
from dynplayer.update.foldin import (
    DEFAULT_ELIGIBLE,
    DEFAULT_METHOD,
    DEFAULT_UPDATE_CALIBRATE,
    DEFAULT_UPDATE_MIN_PLAYLISTS,
    check_eligible,
    check_method,
)
from dynplayer.update.merge import (
    fold_in_corpus,
    merge,
    read_new_playlists,
    selected_now,
    table_columns,
)
from dynplayer.update.rundir import MANIFEST, RUN_CORPUS, _link_tree, exchange, read_manifest
from dynplayer.update.textspace import update_text

__all__ = ["MANIFEST", "UpdateReport", "read_manifest", "update_run"]


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
    # tracks of the new playlists without a vector that the `selected` rule leaves out (a
    # retrain would not train them either); 0 with `--eligible any`
    tracks_not_eligible: int = 0
    eligible: str = "selected"
    min_playlists: int = 2
    tracks_placed_by_artist: int = 0  # `by_artist`: new tracks given their artist's vector

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def update_run(run_dir: Path, inputs: Sequence[Path], *, fmt: str = "auto",
               lenient: bool = False, tracks: Iterable[Path] = (),
               min_playlists: int | None = None, method: str | None = None,
               eligible: str | None = None, calibrate: float | None = None,
               database_url: str | None = None, progress: bool | None = None,
               before_commit: Callable[[], None] | None = None,
               catalog: str | None = None, by_artist: bool = False) -> UpdateReport:
    """Add the playlists of `inputs` to the run at `run_dir` (see the module docstring).

    `min_playlists` / `method` / `eligible` / `calibrate` default to what the run's manifest
    recorded, else the defaults chosen on validation (`dynplayer bench update --choose`).
    `before_commit` runs after the exchange, before the database commit
    (the tests use it to fail there). `by_artist`: a new track left without a vector (below N,
    or outside the rule) whose artist the run's shared parts know is placed by its artist
    (`update.metadata`). `catalog` is the database catalog holding the run (None:
    the unnamed one).
    """
    t0 = time.perf_counter()
    times: dict[str, float] = {}
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    manifest = read_manifest(run)
    # The run's recorded rule, if its manifest has one (a manifest from before the rule, e.g.
    # the long tail's, may hold an N that belongs to the old `any` rule: ignored then).
    recorded = manifest if "eligible" in manifest else {}
    eligible = str(eligible if eligible is not None else
                   recorded.get("eligible", DEFAULT_ELIGIBLE))
    calibrate = float(calibrate if calibrate is not None else
                      recorded.get("calibrate", DEFAULT_UPDATE_CALIBRATE))
    check_eligible(eligible, calibrate)
    if min_playlists is None:
        min_playlists = int(recorded.get("min_playlists", DEFAULT_UPDATE_MIN_PLAYLISTS[eligible]))
    method = str(method if method is not None else manifest.get("method", DEFAULT_METHOD))
    check_method(method, min_playlists)
    base = load_corpus(run.corpus_dir)
    base.require_split()
    existing = set(base.pids)
    delta, builder = read_new_playlists(list(inputs), existing, fmt=fmt, lenient=lenient,
                                        tracks=tracks, progress=progress)
    times["read"] = time.perf_counter() - t0
    update_no = len(manifest.get("updates", [])) + 1
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
    n_unvectored = int(candidates.shape[0])
    if eligible == "selected":
        candidates = candidates[selected_now(corpus)[candidates]]
    folded = fold_in_corpus(corpus, run, candidates, min_playlists=min_playlists, method=method,
                            calibrate=calibrate)
    n_placed = 0
    if by_artist:
        from dynplayer.update.metadata import place_by_artist

        unvectored = touched[col[touched] < 0]
        rest = unvectored[~np.isin(unvectored, folded.track_idx)]
        placed = place_by_artist(corpus, run, rest, calibrate=calibrate)
        n_placed = int(placed.track_idx.shape[0])
        folded = replace(folded, track_idx=np.r_[folded.track_idx, placed.track_idx],
                         vectors=np.concatenate([folded.vectors, placed.vectors]),
                         n_playlists=np.r_[folded.n_playlists, placed.n_playlists])
    times["fold_in"] = time.perf_counter() - t2
    new_ids = [corpus.track_ids[t] for t in folded.track_idx]
    n_old = len(run.ids)
    # The existing rows are written back exactly as read (no renormalisation): only rows are
    # added. The fold-in vectors are L2-normalised already.
    vectors = np.concatenate([run.vectors, folded.vectors.astype(run.vectors.dtype)])

    record: dict[str, Any] = {
        "update": update_no, "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "inputs": [str(Path(p).resolve()) for p in inputs], "format": fmt, "lenient": lenient,
        "method": method, "min_playlists": min_playlists, "eligible": eligible,
        "calibrate": calibrate,
        "counts": {"playlists_added": int(delta.n_playlists),
                   "occurrences_added": int(delta.n_occurrences),
                   "duplicates_skipped": builder.duplicates,
                   "records_skipped": builder.skip.as_dict(),
                   "tracks_new": int(n_new_tracks), "tracks_folded": len(new_ids) - n_placed,
                   "tracks_placed_by_artist": n_placed,
                   # eligible tracks left without any vector (below N, no known artist)
                   "tracks_waiting": int((~np.isin(candidates, folded.track_idx)).sum()),
                   "tracks_not_eligible": n_unvectored - int(candidates.shape[0])},
        "rows": [n_old, n_old + len(new_ids)],
    }
    corpus.manifest = dict(base.manifest)
    corpus.manifest.setdefault("updates", []).append(
        {"update": update_no, "inputs": record["inputs"], "counts": record["counts"]})
    from dynplayer.data.prepare import summary_counts

    corpus.manifest["counts"] = summary_counts(corpus)

    parent = run_dir.resolve().parent
    tmp = staging_directory(parent, f".{run_dir.name}.update-", like=run_dir)
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
            from dynplayer.text.space import vectors_hash

            new_run = Run(path=tmp, vectors=vectors, ids=[*run.ids, *new_ids], config=config)
            text_added = update_text(run_dir, tmp, corpus, new_playlists, new_ids,
                                     folded.vectors, vectors_hash(new_run), update_no)
            record["counts"]["text_playlists_added"] = text_added
            times["text"] = time.perf_counter() - t4
        version = run_version(tmp)
        record["model_version"] = version
        # The first update records its fold-in rule as the run's default (a manifest from
        # before the rule existed gets all four together, so they stay consistent).
        manifest = {**manifest, "method": manifest.get("method", method)}
        if not recorded:
            manifest.update(min_playlists=min_playlists, eligible=eligible, calibrate=calibrate)
        manifest["updates"] = [*manifest.get("updates", []), record]
        atomic_write_json(tmp / MANIFEST, manifest)

        index_report = None
        if database_url is not None:
            t5 = time.perf_counter()
            from dynplayer.store.insert import prepare_insert

            pending = prepare_insert(database_url, run_dir, tmp, old_version=run_version(run_dir),
                                     new_version=version, catalog=catalog)
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
        tracks_new=int(n_new_tracks), tracks_folded=len(new_ids) - n_placed,
        tracks_placed_by_artist=n_placed,
        tracks_waiting=record["counts"]["tracks_waiting"], text_playlists_added=text_added,
        tracks_not_eligible=record["counts"]["tracks_not_eligible"], eligible=eligible,
        min_playlists=min_playlists,
        rows=record["rows"], seconds={k: round(v, 3) for k, v in times.items()},
        index=index_report, duplicate_examples=builder.duplicate_examples)
    if progress or (progress is None and sys.stderr.isatty()):
        print(f"update {update_no}: {report.playlists_added:,} playlists, "
              f"{report.tracks_folded:,} tracks folded in", file=sys.stderr)
    return report

