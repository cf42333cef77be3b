"""A run's tracks by name (ids, names, artists, popularity), without its vectors: what a
command needs to know which tracks its arguments name, and to refuse an unknown one, before it
loads the model. Remembered in the data directory's cache (`dynplayer.cache`) under the run's
ids and its corpus track table (their paths, sizes and modification times), so a one-shot
command reads them back in a few hundredths of a second instead of reading the corpus'
track table (~0.5 s at 200k tracks); nothing here imports pyarrow or scipy unless it must."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dynplayer.run import Run, check_run_dir, read_run_config

_NONE = "\x00"  # a missing name or artist in the cached text (no real name holds it)


@dataclass(frozen=True)
class TrackNames:
    """A run's track ids with their names, artists and popularity (no vectors)."""

    ids: list[str]
    names: list[str | None]
    artists: list[str | None]
    popularity: np.ndarray  # int64 (N,)
    key: str = ""  # what the cache knows them by (the files they were read from); "" unknown


def track_names(run_dir: Path) -> TrackNames:
    """The tracks of the run at `run_dir` by name, in its row order."""
    from dynplayer.cache import array_to_lines, file_stamp, key_of, lines_to_array, remembered

    d = check_run_dir(Path(run_dir))
    ids = (d / "ids.txt").read_text().splitlines()
    corpus_dir = Run(d, np.zeros((0, 0), np.float32), ids, read_run_config(d)).corpus_dir
    try:
        parts = file_stamp([d / "ids.txt", corpus_dir / "tracks.parquet"])
    except OSError:
        parts = [str(d.resolve()), "missing"]  # read_track_table says what is wrong

    def build() -> TrackNames:
        from dynplayer.data.corpus import read_track_table

        table = read_track_table(corpus_dir, ids, ["name", "artist", "occurrence_count"])
        return TrackNames(ids, table["name"], table["artist"],
                          np.array([c or 0 for c in table["occurrence_count"]],
                                   dtype=np.int64), key)

    def dump(t: TrackNames) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, text=lines_to_array([_NONE if v is None else v
                                           for v in [*t.names, *t.artists]]),
                 popularity=t.popularity)
        return buf.getvalue()

    def load(data: bytes) -> TrackNames:
        n = len(ids)
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            lines = array_to_lines(z["text"], 2 * n)
            popularity = z["popularity"].astype(np.int64)
        if popularity.shape != (n,):
            raise ValueError("cached names of another run")
        values: list[str | None] = [None if v == _NONE else v for v in lines]
        return TrackNames(ids, values[:n], values[n:], popularity, key)

    key = key_of(parts)
    return remembered("track-names", key, build, dump, load)


__all__ = ["TrackNames", "track_names"]
