"""The import benchmark against a real server: `n` tiny MP3 files tagged like a library
(catalogue tracks, tags perturbed), a local Supysonic over them, and `import_library` timed
end to end (read through the API, build the catalogue index, match, store)."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dynplayer.errors import DynplayerError
from dynplayer.library.match import Catalogue
from dynplayer.library.simulate import tagged
from dynplayer.library.store import library_dir


def server_import(run_dir: Path, cat: Catalogue, corpus: Any, rng: np.random.Generator, n: int,
                  log: Callable[[str], None]) -> dict[str, Any]:
    from dynplayer.library.importer import import_library
    from dynplayer.library.subsonic import Credentials
    from dynplayer.library.supysonic import SupysonicServer, supysonic_available, write_mp3

    why = supysonic_available()
    if why is not None:
        raise DynplayerError(f"bench library --server: {why}")
    named = np.flatnonzero([bool(a) and bool(t) for a, t in
                            zip(corpus.artists, corpus.track_names, strict=True)])
    ts = tagged(rng.choice(named, size=min(n, named.size), replace=False), corpus.track_names,
                corpus.artists, rng, "S")
    root = Path(tempfile.mkdtemp(prefix="dynplayer-bench-supysonic-"))
    try:
        music = root / "music"
        t = time.perf_counter()
        for i, tr in enumerate(ts.tracks):
            write_mp3(music / f"{i // 500:03d}" / f"{i:05d}.mp3", tr.artist, tr.title,
                      f"Album {i // 12}")
        log(f"wrote {len(ts.tracks):,} MP3 files ({time.perf_counter() - t:.0f} s)")
        server = SupysonicServer(root / "server", music)
        scan = server.setup()
        log(f"Supysonic scanned them in {scan:.0f} s")
        with server:
            server.start()
            t = time.perf_counter()
            report = import_library(run_dir, server.url, name="bench-server",
                                    credentials=Credentials(server.user, server.password))
            took = time.perf_counter() - t
        s = report.library.manifest["seconds"]
        return {"tracks": len(report.library.tracks), "import_s": took, "read_s": s["read"],
                "catalogue_s": s["catalogue"], "match_s": s["match"], "scan_s": scan,
                "index": report.library.manifest["catalogue_index"],
                "matched": report.summary["status"]["matched"]}
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(library_dir(run_dir, "bench-server"), ignore_errors=True)


__all__ = ["server_import"]
