"""`dynplayer bench prepare`: speed and peak memory of the data stage.

Two measurements, each in a fresh child process so its peak resident memory is its own:
(a) `prepare` end to end on a real collection (read, artist genres, neighbours, selection,
split, save), and (b) a synthetic corpus at full MPD scale generated and put through `derive`
(neighbours, selection, split, genre classes).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dynplayer.errors import DynplayerError


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_s() -> float:
    """CPU seconds (user + system) this process has used: on a shared machine this is the
    figure that does not depend on what else runs, beside the wall time."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def machine() -> dict[str, Any]:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cpus": cpus, "python": platform.python_version(), "platform": platform.platform(),
            "load_avg_1min_at_start": load}


def bench_real(inputs: list[str], artist_genres: str | None, out: str) -> dict[str, Any]:
    """(a) prepare + neighbours + selection (+ split, genres, save) on real playlists."""
    from dynplayer.config import DataConfig
    from dynplayer.data.prepare import prepare

    t0 = time.perf_counter()
    corpus = prepare([Path(p) for p in inputs], Path(out), DataConfig(),
                     artist_genres=Path(artist_genres) if artist_genres else None)
    wall = time.perf_counter() - t0
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu_s(), 2),
            "timings_s": corpus.manifest["timings_s"],
            "counts": corpus.manifest["counts"], "peak_rss_mb": round(peak_rss_mb(), 1)}


def bench_synthetic(n_playlists: int, n_tracks: int, mean_length: float,
                    seed: int) -> dict[str, Any]:
    """(b) generate a synthetic corpus and derive neighbours, selection and split."""
    from dynplayer.config import DataConfig
    from dynplayer.data.prepare import derive
    from dynplayer.data.synthetic import SyntheticSpec, generate

    t0 = time.perf_counter()
    corpus = generate(SyntheticSpec(n_playlists=n_playlists, n_tracks=n_tracks,
                                    mean_length=mean_length, seed=seed))
    t1 = time.perf_counter()
    rss_generated = peak_rss_mb()
    cpu1 = cpu_s()
    derive(corpus, DataConfig(seed=seed))
    t2 = time.perf_counter()
    return {"generate_s": round(t1 - t0, 2), "derive_s": round(t2 - t1, 2),
            "generate_cpu_s": round(cpu1, 2), "derive_cpu_s": round(cpu_s() - cpu1, 2),
            "timings_s": corpus.manifest["timings_s"], "counts": corpus.manifest["counts"],
            "peak_rss_mb_after_generate": round(rss_generated, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1)}


def _child(kind: str, args: dict[str, Any]) -> dict[str, Any]:
    code = ("import json, sys; from dynplayer.data import benchmark as b; "
            f"r = b.bench_{kind}(**json.loads(sys.argv[1])); print(json.dumps(r))")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no message)"]
        raise DynplayerError(f"bench {kind} failed: {tail[0]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = round(time.perf_counter() - t0, 2)
    return result


def run_benchmarks(
    *, mpd: Path | None, artist_genres: Path | None, synthetic_playlists: int,
    synthetic_tracks: int, mean_length: float, seed: int = 0,
) -> dict[str, Any]:
    """Run (a) when `mpd` is given and (b) when `synthetic_playlists` > 0; a JSON-able report."""
    report: dict[str, Any] = {"machine": machine()}
    if mpd is not None:
        if not Path(mpd).exists():
            raise DynplayerError(f"{mpd}: playlist data not found (pass --mpd, or --no-real)")
        tmp = tempfile.mkdtemp(prefix="dynplayer-bench-")
        try:
            report["real"] = {"input": str(mpd), "artist_genres": str(artist_genres)
                              if artist_genres else None,
                              **_child("real", {"inputs": [str(mpd)],
                                                "artist_genres": str(artist_genres)
                                                if artist_genres else None,
                                                "out": str(Path(tmp) / "corpus")})}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if synthetic_playlists > 0:
        report["synthetic"] = {"playlists": synthetic_playlists, "tracks": synthetic_tracks,
                               "mean_length": mean_length,
                               **_child("synthetic", {"n_playlists": synthetic_playlists,
                                                      "n_tracks": synthetic_tracks,
                                                      "mean_length": mean_length,
                                                      "seed": seed})}
    return report
