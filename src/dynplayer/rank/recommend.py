"""`dynplayer recommend`: continue playlists with the two-stage ranker when RUN_DIR/ranker/
exists, with the embedding ranking otherwise.

Seeds file: JSON lines `{"pid": str|int, "visible": [track ids in playlist order], "name":
str}` (`name` optional, `visible` optional when a name is given; extra fields ignored, gzip or
not). Output: one line per input line, same order, `{"pid", "tracks": [ids best first],
"scores": [...], "method"}`; a blank line is an error naming it (it would have no answer line).
With seeds, the ranker reads the name's evidence (the text model's scores, `rank.title`); a
playlist with a name and no known track is answered by the text model (`dynplayer search`);
one with neither gets the most popular tracks. Track ids outside the model are counted (never
fatal); a line with no tracks and no name is an error naming it.

With the ranker, nothing but the run and RUN_DIR/ranker/ is read (its stored sources,
`rank.saved`); names for the seeds given by name come from `dynplayer.serve.resolve`, the
resolver of every entry point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dynplayer.data.corpus import load_corpus
from dynplayer.errors import DataError, QueryError
from dynplayer.eval.protocol import _id_list, _read_lines, playlist_record
from dynplayer.rank.candidates import Queries, ordered_distinct
from dynplayer.rank.stage import TwoStage, has_ranker, load_stage, source_playlists
from dynplayer.run import Run, load_run

MAX_K = 1000


MAX_NAME = 500  # characters of a playlist name (the text search's query limit)


@dataclass
class SeedFile:
    pids: list[Any]
    queries: Queries
    unknown: int = 0  # track ids not in the model
    empty: list[int] = field(default_factory=list)  # input rows with no known track
    names: list[str | None] = field(default_factory=list)


def check_name(value: Any, where: dict[str, Any]) -> str | None:
    """A playlist's optional name: a non-empty string of at most MAX_NAME characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise DataError(f"must be a string, got {type(value).__name__}", **where, field="name")
    name = " ".join(value.split())
    if not name:
        raise DataError("empty (give words, or leave the field out)", **where, field="name")
    if len(name) > MAX_NAME:
        raise DataError(f"{len(name):,} characters; the limit is {MAX_NAME}", **where,
                        field="name")
    return name


def parse_seed_lines(lines: list[str], index: dict[str, int], source: str) -> SeedFile:
    """Parse seed lines against the model's ids; a malformed line is a DataError naming it."""
    pids: list[Any] = []
    names: list[str | None] = []
    cols: list[int] = []
    indptr = [0]
    unknown = 0
    for line_no, line in enumerate(lines, start=1):
        where: dict[str, Any] = {"file": source, "line": line_no}
        if not line.strip():
            raise DataError("blank line (one playlist per line: each gets its answer line)",
                            **where)
        obj, pid = playlist_record(line, where)
        pids.append(pid)
        name = check_name(obj.get("name"), where)
        names.append(name)
        if name is not None and "visible" not in obj:
            obj["visible"] = []
        visible = _id_list(obj, "visible", where)
        if not visible and name is None:
            raise DataError("no tracks and no name: give the playlist's tracks or its name",
                            **where, field="visible")
        for t in visible:
            col = index.get(t)
            if col is None:
                unknown += 1
            else:
                cols.append(col)
        indptr.append(len(cols))
    if not pids:
        raise DataError("no playlists in the seeds file", file=source)
    ip, c = ordered_distinct(np.asarray(indptr, dtype=np.int64), np.asarray(cols, np.int64))
    empty = np.flatnonzero(np.diff(ip) == 0).tolist()
    return SeedFile(pids, Queries(ip, c), unknown, empty, names)


def read_seed_file(path: Path, index: dict[str, int]) -> SeedFile:
    return parse_seed_lines(_read_lines(Path(path)), index, str(path))


class Recommender:
    """One run's continuation: the two-stage ranker, or the embedding ranking without one."""

    def __init__(self, run: Run, stage: TwoStage | None, popularity: np.ndarray) -> None:
        self.run = run
        self.stage = stage
        self.index = run.index_of()
        self.popularity = np.asarray(popularity, dtype=np.float32)  # for seedless playlists
        self._searcher: Any = None  # the text model, loaded for the first name-only playlist

    @classmethod
    def load(cls, run_dir: Path, use_ranker: bool = True, run: Run | None = None
             ) -> Recommender:
        run = run or load_run(run_dir)
        if use_ranker and has_ranker(run.path):
            stage = load_stage(run)
            return cls(run, stage, stage.sources.popularity)
        from dynplayer.eval.runner import run_vocab

        corpus = load_corpus(run.corpus_dir)
        x = corpus.interaction_matrix(source_playlists(corpus, run), vocab=run_vocab(run, corpus))
        return cls(run, None, np.asarray(x.sum(axis=0), dtype=np.float32).ravel())

    @property
    def method(self) -> str:
        return "two-stage ranker" if self.stage is not None else "embedding"

    def methods(self, q: Queries, names: list[str | None] | None = None) -> list[str]:
        """How each playlist of `q` is answered: with seeds, `method`; a name alone, "text";
        neither, "popularity"."""
        return [self.method if n > 0 else "text" if names and names[i] and self.has_text
                else "popularity" for i, n in enumerate(q.n_seeds.tolist())]

    @property
    def has_text(self) -> bool:
        return (self.run.path / "text").is_dir()

    def recommend(self, q: Queries, k: int, names: list[str | None] | None = None
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per playlist: the top-k vocabulary rows (seeds excluded), best first, and scores.
        `names`: each playlist's name or None (evidence for the ranker; alone, a text query)."""
        if not 1 <= k <= MAX_K:
            raise QueryError(f"k must be between 1 and {MAX_K}, got {k}")
        empty = q.n_seeds == 0
        out: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0, np.int64),
                                                     np.zeros(0, np.float32))] * q.n
        pop_top = np.argsort(-self.popularity, kind="stable")[:k]
        how = self.methods(q, names)
        for i in np.flatnonzero(empty):
            if how[i] == "text" and names is not None and names[i]:
                out[i] = self._text(names[i] or "", k)
            else:
                out[i] = (pop_top,
                          self.popularity[pop_top] / max(float(self.popularity.max()), 1))
        rows = np.flatnonzero(~empty)
        if rows.size == 0:
            return out
        sub = _take(q, rows)
        if self.stage is not None:
            ranked = self.stage.rank(sub, k, [names[i] for i in rows] if names else None)
            short = [j for j, (cols, _) in enumerate(ranked) if cols.shape[0] < k]
            if short:  # fewer candidates than k: the embedding ranking continues the list
                extra = self._embedding(_take(sub, np.asarray(short)), k)
                for j, (cols, _) in zip(short, extra, strict=True):
                    c0, s0 = ranked[j]
                    more = ~np.isin(cols, c0)
                    lo = float(s0.min()) if s0.size else 0.0
                    ranked[j] = (np.r_[c0, cols[more]][:k],
                                 np.r_[s0, lo - 1.0 - np.arange(more.sum())][:k])
        else:
            ranked = self._embedding(sub, k)
        for i, r in zip(rows, ranked, strict=True):
            out[int(i)] = r
        return out

    def _text(self, name: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """A name alone: the text model's tracks for it (`dynplayer search`)."""
        if self._searcher is None:
            from dynplayer.text.search import TextSearcher

            self._searcher = TextSearcher.load(self.run.path)
        hits = [h for h in self._searcher.search(name, k=k).tracks if h.track_id in self.index]
        return (np.array([self.index[h.track_id] for h in hits], dtype=np.int64),
                np.array([h.score for h in hits], dtype=np.float32))

    def _embedding(self, q: Queries, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        v = self.run.vectors
        seeds = q.seed_matrix(v.shape[0])
        mean = np.asarray(seeds @ v) / np.maximum(q.n_seeds, 1)[:, None]
        mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
        scores = mean @ v.T
        scores[np.repeat(np.arange(q.n), q.n_seeds), q.seed_cols] = -np.inf
        kk = min(k, v.shape[0])
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        vals = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-vals, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        vals = np.take_along_axis(vals, order, axis=1)
        return [(t[np.isfinite(s)], s[np.isfinite(s)]) for t, s in zip(top, vals, strict=True)]


def _take(q: Queries, rows: np.ndarray) -> Queries:
    counts = q.n_seeds[rows]
    ip = np.zeros(rows.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=ip[1:])
    starts = np.repeat(q.seed_indptr[rows], counts)
    offset = np.arange(int(ip[-1])) - np.repeat(ip[:-1], counts)
    return Queries(ip, q.seed_cols[starts + offset])

