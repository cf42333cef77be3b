"""`bench library --import-tracks N`: `library import` of an N-track CSV library timed end to
end, twice: first with no stored match index (it is built, then stored with the run: *cold*),
then again (it is read: *warm*). The library: N - N/20 catalogue tracks with names, drawn
uniformly, tags perturbed (`simulate.perturb`, as in `--server`), and N/20 decoys the catalogue
does not hold; precision / recall of the warm import's matches as in `bench.match_quality`.
Writes RUN_DIR/library/bench-import (removed afterwards) and RUN_DIR/cache's match index (kept:
it is the run's own)."""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dynplayer.library.match import Catalogue
from dynplayer.library.matchindex import index_path
from dynplayer.library.simulate import TaggedSet, decoys, tagged
from dynplayer.library.store import library_dir
from dynplayer.library.tagkeys import identity

NAME = "bench-import"


def import_set(corpus: Any, rng: np.random.Generator, n: int) -> TaggedSet:
    """n library tracks: catalogue tracks with perturbed tags, and 1 in 20 decoys."""
    n_dec = n // 20
    named = np.flatnonzero([bool(a) and bool(t) for a, t in
                            zip(corpus.artists, corpus.track_names, strict=True)])
    ts = tagged(rng.choice(named, size=min(n - n_dec, named.size), replace=False),
                corpus.track_names, corpus.artists, rng, "I")
    known = {identity(a, t) for a, t in zip(corpus.artists, corpus.track_names, strict=True)
             if a and t}
    d = decoys(n_dec, corpus.track_names, corpus.artists, known, rng, "ID") if n_dec else \
        TaggedSet([], np.zeros(0, np.int64), [])
    return TaggedSet(ts.tracks + d.tracks, np.r_[ts.truth, d.truth],
                     ts.decoy_kind + d.decoy_kind)


def write_csv(path: Path, ts: TaggedSet) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "artist", "title"])
        for t in ts.tracks:
            w.writerow([t.id, t.artist, t.title])


def csv_import(run_dir: Path, cat: Catalogue, corpus: Any, rng: np.random.Generator, n: int,
               log: Callable[[str], None]) -> dict[str, Any]:
    """The cold and the warm import of an n-track CSV library (see the module docstring)."""
    from dynplayer.library.bench import quality
    from dynplayer.library.importer import import_library

    ts = import_set(corpus, rng, n)
    root = Path(tempfile.mkdtemp(prefix="dynplayer-bench-import-"))
    out: dict[str, Any] = {"tracks": len(ts.tracks), "decoys": int((ts.truth < 0).sum())}
    try:
        src = root / "library.csv"
        write_csv(src, ts)
        index_path(run_dir).unlink(missing_ok=True)  # cold: no stored index
        report = None
        for phase in ("cold", "warm"):
            t, c = time.perf_counter(), time.process_time()
            report = import_library(run_dir, str(src), name=NAME)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            s = report.library.manifest["seconds"]
            out[phase] = {"total_s": wall, "cpu_s": cpu, "read_s": s["read"],
                          "index_s": s["catalogue"], "match_s": s["match"],
                          "index": report.library.manifest["catalogue_index"],
                          "load_average": round(os.getloadavg()[0], 1)}
            log(f"import {phase}: {wall:.1f} s (index {report.library.manifest['catalogue_index']}"
                f" {s['catalogue']:.1f} s, match {s['match']:.1f} s)")
        assert report is not None
        out["index_stored"] = index_path(run_dir).is_file()
        out["matching"] = quality(cat, report.library.matches, ts)
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(library_dir(run_dir, NAME), ignore_errors=True)


def render_import(r: dict[str, Any]) -> list[str]:
    lines = [f"Import of a {r['tracks']:,}-track CSV library ({r['decoys']:,} decoys):"]
    for phase in ("cold", "warm"):
        p = r[phase]
        lines.append(f"  {phase}: {p['total_s']:.1f} s wall, {p['cpu_s']:.1f} s CPU (read "
                     f"{p['read_s']:.1f}, match index {p['index']} {p['index_s']:.1f}, match "
                     f"{p['match_s']:.1f}; load average {p['load_average']})")
    q = r["matching"]
    lines.append(f"  matching: recall {q['recall']:.4f}, precision {q['precision']:.4f}, wrong "
                 f"{q['wrong_rate']:.4f} of {q['tracks']:,} catalogue tracks; decoys falsely "
                 f"matched {q['decoy_false_match']:.4f}")
    return lines


__all__ = ["csv_import", "import_set", "render_import", "write_csv"]
