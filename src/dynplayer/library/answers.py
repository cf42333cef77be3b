"""Answers restricted to a listener's library: instant mixes, continuations, free text, and
"discover" (catalogue tracks the library lacks), each track with its "because".

Every library track gets a place in the run's track space: its catalogue track's vector when
the run has one, else a place from the training playlists holding it, else its artist's
(`library.placement`); tracks with none of these are never answered, and placed tracks rank
after those with a vector of their own (`PLACED_PENALTY`). Continuations use the run's second
stage when RUN_DIR/ranker/ exists, its candidates drawn from the library only
(`rank.candidates.retrieve(allowed=...)`); placed tracks, which it cannot score, are merged in
by their cosine with the seeds. Free text follows `TextSearcher`: the query's top playlists,
each library track scored by occurrence x similarity^power, plus pseudo-relevance feedback and
the artist / genre match, so a library track in none of those playlists still gets its place
by cosine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dynplayer.data.corpus import Corpus, load_corpus
from dynplayer.errors import QueryError
from dynplayer.library.placement import ArtistPlacement
from dynplayer.library.store import Library, load_library
from dynplayer.library.tagkeys import identity, primary_artist
from dynplayer.names import fold
from dynplayer.run import Run, l2_normalize, load_run

MAX_K = 200
BECAUSE_PLAYLISTS = 3
# A place from playlists or an artist is a mean of means: closer to every query than a trained
# vector is (hubness), so such tracks rank by their cosine minus this; chosen on the validation
# split with `dynplayer bench library --split val --placed-penalty ...` (docs/benchmarks.md).
# Validation, 3 libraries x 12 playlists, recall@20: 0 -> 0.18, 0.1 -> 0.30, 0.3 -> 0.59,
# 1 -> 0.67 (item-kNN 0.62): a placed track follows every track with a vector of positive cosine.
PLACED_PENALTY = 1.0


@dataclass
class Answer:
    """Library ids best first, one "because" each (`discover`: catalogue ids)."""

    kind: str
    tracks: list[str]
    because: list[dict[str, Any]]
    scores: list[float]
    seeds: list[str] = field(default_factory=list)
    method: str = "embedding"
    searched_as: str | None = None
    resolved: list[str] = field(default_factory=list)  # what each seed was taken as
    ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"tracks": self.tracks, "because": self.because,
                "scores": [round(s, 5) for s in self.scores], "seeds": self.seeds,
                "resolved": self.resolved, "method": self.method,
                "searched_as": self.searched_as}


class LibraryModel:
    """One run and one of its libraries in memory."""

    def __init__(self, run: Run, corpus: Corpus, library: Library, *, searcher: Any = None,
                 stage: Any = None, placed_penalty: float = PLACED_PENALTY) -> None:
        from dynplayer.eval.runner import run_vocab
        from dynplayer.rank.stage import source_playlists

        self.run, self.corpus, self.library = run, corpus, library
        self.searcher, self.stage = searcher, stage
        self.placement = ArtistPlacement(run, corpus)
        index = run.index_of()
        n, d = len(library.tracks), run.vectors.shape[1]
        self.run_row = np.full(n, -1, dtype=np.int64)
        self.vecs = np.zeros((n, d), dtype=np.float32)
        self.placed: list[str | None] = [None] * n
        cat_row = {t: j for j, t in enumerate(corpus.track_ids)}
        context = [i for i, m in enumerate(library.matches)
                   if m.track_id and m.track_id not in index and m.track_id in cat_row]
        ctx = self.placement.context_vectors(np.array(
            [cat_row[library.matches[i].track_id or ""] for i in context], dtype=np.int64)) \
            if context else np.zeros((0, d), np.float32)
        ctx_of = {i: ctx[j] for j, i in enumerate(context) if ctx[j].any()}
        for i, m in enumerate(library.matches):
            r = index.get(m.track_id) if m.track_id else None
            if r is not None:
                self.run_row[i], self.vecs[i], self.placed[i] = r, run.vectors[r], "track"
                continue
            if i in ctx_of:
                self.vecs[i], self.placed[i] = ctx_of[i], "context"
                continue
            j = cat_row.get(m.track_id) if m.track_id else None
            artist = m.artist or (corpus.artists[j] if j is not None else None)
            v = self.placement.artist_vector(artist) if artist else None
            if v is not None:
                self.vecs[i], self.placed[i] = v, "artist"
        self.usable = np.array([p is not None for p in self.placed], dtype=bool)
        self.penalty = np.array([placed_penalty if p in ("context", "artist") else 0.0
                                 for p in self.placed], dtype=np.float32)
        tracks = library.tracks
        self.song = [m.track_id or "|".join(identity(t.artist, t.title))
                     for t, m in zip(tracks, library.matches, strict=True)]
        self.artist_of = [primary_artist(t.artist) for t in tracks]
        self.ids = [t.id for t in tracks]
        self.id_index = {t: i for i, t in enumerate(self.ids)}
        self.vocab = run_vocab(run, corpus)
        train = corpus.interaction_matrix(source_playlists(corpus, run), vocab=self.vocab)
        self.train = train.tocsc()  # a track's playlists: its column
        self.train_rows = train.tocsr()  # those playlists' tracks: their rows
        self.lib_of_run: dict[int, list[int]] = {}
        for i in np.flatnonzero(self.run_row >= 0).tolist():
            self.lib_of_run.setdefault(int(self.run_row[i]), []).append(i)
        self._folded: list[tuple[str, str, str, str]] | None = None
        self.train_pids = source_playlists(corpus, run)
        self.owned = np.zeros(run.vectors.shape[0], dtype=bool)
        self.owned[self.run_row[self.run_row >= 0]] = True

    @classmethod
    def load(cls, run_dir: Path, name: str = "default", *, text: bool = True,
             ranker: bool = True) -> LibraryModel:
        run = load_run(run_dir)
        corpus = load_corpus(run.corpus_dir)
        searcher = stage = None
        if text and (Path(run_dir) / "text").is_dir():
            from dynplayer.text.search import TextSearcher

            searcher = TextSearcher.load(run_dir)
        if ranker:
            from dynplayer.rank.stage import has_ranker, load_stage

            if has_ranker(run_dir):
                stage = load_stage(run, corpus, _vocab(run, corpus))
        return cls(run, corpus, load_library(run_dir, name), searcher=searcher, stage=stage)

    # ---- seeds -------------------------------------------------------------------------------
    def resolve(self, seeds: list[str]) -> tuple[list[int], list[str]]:
        """Library rows of SEEDs: library ids, else names ("artist - title", a title, an album,
        an artist: every library track of it); the descriptions say what each resolved to."""
        if not seeds:
            raise QueryError("give at least one seed (a library id or a name)")
        rows: list[int] = []
        said: list[str] = []
        for s in seeds:
            got, what = self._resolve_one(s)
            rows += [r for r in got if r not in rows]
            said.append(what)
        return rows, said

    def _resolve_one(self, seed: str) -> tuple[list[int], str]:
        if seed in self.id_index:
            return [self.id_index[seed]], f"track {seed}"
        key = fold(seed)
        if not key:
            raise QueryError(f"seed {seed!r} is empty")
        tracks = self.library.tracks
        if self._folded is None:  # once per library: (artist title, title, album, artist)
            self._folded = [(fold(f"{t.artist} {t.title}"), fold(t.title), fold(t.album),
                             fold(t.artist)) for t in tracks]
        folded = self._folded
        full = [i for i, f in enumerate(folded) if f[0] == key]
        titles = [i for i, f in enumerate(folded) if f[1] == key]
        if full or titles:
            pick = full or titles
            best = max(pick, key=lambda i: (self.usable[i], -i))
            return [best], f"track {tracks[best].id}"
        albums = [i for i, f in enumerate(folded) if f[2] and f[2] == key]
        if albums:
            return albums, f"album {tracks[albums[0]].album}"
        primary = primary_artist(seed)
        artists = [i for i, f in enumerate(folded)
                   if f[3] == key or self.artist_of[i] == primary]
        if artists:
            return artists[:50], f"artist {tracks[artists[0]].artist}"
        raise QueryError(f"{seed!r} is no library id, and no track, album or artist of the "
                         f"library {self.library.name!r}")

    # ---- ranking -----------------------------------------------------------------------------
    def _order(self, seeds: list[int], n: int) -> tuple[list[int], np.ndarray, str]:
        """Library rows (seeds and unusable rows excluded) best first, at most `n`, with their
        scores, and the method."""
        use = [s for s in seeds if self.usable[s]]
        if not use:
            raise QueryError("none of the seeds has a place in the track space (not in the "
                             "catalogue, artist unknown)")
        q = l2_normalize(self.vecs[use].mean(axis=0, keepdims=True))[0]
        cos = self.vecs @ q - self.penalty
        cos[~self.usable] = -np.inf
        cos[seeds] = -np.inf
        runs = [int(self.run_row[s]) for s in use if self.run_row[s] >= 0]
        if self.stage is None or not runs:
            top = _top(cos, n)
            return top.tolist(), cos[top], "embedding"
        from dynplayer.rank.candidates import Queries

        allowed = self.owned.copy()
        allowed[runs] = False
        seed_ip = np.array([0, len(runs)], dtype=np.int64)
        (cols, _), = self.stage.rank(Queries(seed_ip, np.asarray(runs, np.int64)),
                                     min(n, int(allowed.sum())) or 1, allowed=allowed)
        ranked = [i for c in cols.tolist() for i in self.lib_of_run.get(c, ())
                  if np.isfinite(cos[i])]
        # the rest by cosine (only the best n + |ranked| can reach the answer): placed rows
        # inserted where their cosine falls among the ranked rows' (running minimum), the
        # library's other rows after the ranker's
        taken = set(ranked)
        rest = [i for i in _top(cos, n + len(ranked)).tolist() if i not in taken]
        placed = [i for i in rest if self.run_row[i] < 0]
        tail = [i for i in rest if self.run_row[i] >= 0]
        running = np.minimum.accumulate(cos[ranked]) if ranked else np.zeros(0)
        at = np.searchsorted(-running, -cos[placed], side="right") if placed else []
        slots: dict[int, list[int]] = {}
        for i, p in zip(placed, np.asarray(at).tolist(), strict=True):
            slots.setdefault(int(p), []).append(i)
        merged: list[int] = []
        for p, i in enumerate(ranked):
            merged += slots.pop(p, [])
            merged.append(i)
        for p in sorted(slots):
            merged += slots[p]
        merged = (merged + tail)[:n]
        return merged, cos[merged], "two-stage"

    def _pick(self, order: list[int], scores: np.ndarray, k: int, per_artist: int,
              seeds: list[int]) -> tuple[list[int], list[float]]:
        """The first k of `order` without repeats (one catalogue song once, the seeds' songs
        never) and with at most `per_artist` tracks per artist (0: no cap)."""
        seen = {self.song[s] for s in seeds}
        count: dict[str, int] = {}
        out, out_s = [], []
        for i, s in zip(order, scores.tolist(), strict=True):
            if self.song[i] in seen:
                continue
            a = self.artist_of[i]
            if per_artist and count.get(a, 0) >= per_artist:
                continue
            seen.add(self.song[i])
            count[a] = count.get(a, 0) + 1
            out.append(i)
            out_s.append(float(s))
            if len(out) == k:
                break
        return out, out_s

    def continuation(self, seeds: list[int], k: int = 20, per_artist: int = 0
                     ) -> tuple[list[int], list[float], str]:
        """Library rows continuing `seeds` (rows), best first."""
        _check_k(k)
        want = k * (4 if per_artist else 2) + len(seeds)
        order, scores, method = self._order(seeds, want)
        out, out_s = self._pick(order, scores, k, per_artist, seeds)
        if len(out) < k and len(order) == want:  # the cap or repeats ate the list: go deeper
            order, scores, method = self._order(seeds, int(self.usable.sum()))
            out, out_s = self._pick(order, scores, k, per_artist, seeds)
        return out, out_s, method

    # ---- the questions -----------------------------------------------------------------------
    def mix(self, seeds: list[str], k: int = 20, per_artist: int = 2) -> Answer:
        """An instant mix from tracks, albums or artists of the library (no repeats, at most
        `per_artist` per artist, the seeds themselves not repeated)."""
        t0 = time.perf_counter()
        rows, said = self.resolve(seeds)
        out, scores, method = self.continuation(rows, k, per_artist)
        return self._answer("mix", rows, out, scores, method, said, t0)

    def continue_playlist(self, playlist: str, k: int = 20, per_artist: int = 0) -> Answer:
        """Continue one of the listener's playlists (its id or name)."""
        t0 = time.perf_counter()
        pl = [p for p in self.library.playlists if p.id == playlist] or \
            [p for p in self.library.playlists if fold(p.name) == fold(playlist)]
        if not pl:
            names = ", ".join(repr(p.name) for p in self.library.playlists[:10]) or "none"
            raise QueryError(f"no playlist {playlist!r} in the library {self.library.name!r} "
                             f"(its playlists: {names})")
        rows = [self.id_index[t] for t in pl[0].tracks if t in self.id_index]
        if not rows:
            raise QueryError(f"the playlist {pl[0].name!r} holds no track of the library")
        out, scores, method = self.continuation(rows, k, per_artist)
        return self._answer("continue", rows, out, scores, method,
                            [f"playlist {pl[0].name}"], t0)

    def _answer(self, kind: str, seeds: list[int], out: list[int], scores: list[float],
                method: str, said: list[str], t0: float) -> Answer:
        because = [self.because(i, seeds) for i in out]
        return Answer(kind, [self.ids[i] for i in out], because, scores,
                      seeds=[self.ids[s] for s in seeds], method=method, resolved=said,
                      ms=1e3 * (time.perf_counter() - t0))

    def because(self, i: int, seeds: list[int]) -> dict[str, Any]:
        """Why library row `i` follows `seeds`: training playlists holding it and seeds (most
        seeds first), the seeds it shares most playlists with, or how it was placed."""
        out: dict[str, Any] = {"id": self.ids[i], "placed": self.placed[i]}
        seed_runs = [int(self.run_row[s]) for s in seeds if self.run_row[s] >= 0]
        r = int(self.run_row[i])
        if r >= 0 and seed_runs:
            shared = self.shared_playlists(r, seed_runs)
            if shared is not None:
                cols, per_pl, per_seed = shared
                order = np.lexsort((cols, -per_pl))[:BECAUSE_PLAYLISTS]
                out["playlists"] = [self._playlist(int(cols[j])) for j in order]
                best = {seed_runs[j] for j in np.argsort(-per_seed, kind="stable")[:3]
                        if per_seed[j] > 0}
                out["seeds"] = [self.ids[s] for s in seeds if int(self.run_row[s]) in best][:3]
                n = cols.size
                out["why"] = f"in {n} playlist{'s' * (n != 1)} with your seeds"
                return out
        use = [s for s in seeds if self.usable[s]]
        near = max(use, key=lambda s: float(self.vecs[s] @ self.vecs[i])) if use else None
        if near is not None:
            out["seeds"] = [self.ids[near]]
        t = self.library.tracks[near] if near is not None else None
        close = f"close to {t.title} by {t.artist}" if t is not None else "close to the seeds"
        if self.placed[i] == "context":
            out["why"] = f"{close}, placed by the playlists it is in (it has no vector)"
        elif self.placed[i] == "artist":
            m = self.library.matches[i]
            why = ("its title is not in the catalogue" if m.track_id is None
                   else "its catalogue track has no vector")
            out["why"] = f"placed by its artist {m.artist} ({why}); {close}"
        else:
            out["why"] = f"{close} in the track space"
        return out

    def shared_playlists(self, r: int, seed_runs: list[int]
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Training playlists (columns of `train`) holding run row `r` and any of `seed_runs`,
        how many seeds each holds, and in how many of them each seed is; None when none.
        Straight from the CSC / CSR arrays: scipy's fancy indexing cost 20 ms a track."""
        pls = self.train.indices[self.train.indptr[r]:self.train.indptr[r + 1]]
        if pls.size == 0:
            return None
        where = np.full(self.train.shape[1], -1, dtype=np.int64)
        where[np.asarray(seed_runs, dtype=np.int64)] = np.arange(len(seed_runs))
        ip, ix = self.train_rows.indptr, self.train_rows.indices
        lens = ip[pls + 1] - ip[pls]
        owner = np.repeat(np.arange(pls.size), lens)
        pos = np.repeat(ip[pls], lens) + np.arange(int(lens.sum())) - np.repeat(
            np.cumsum(lens) - lens, lens)
        seed_of = where[ix[pos]]
        hit = seed_of >= 0
        per_pl = np.bincount(owner[hit], minlength=pls.size)
        keep = per_pl > 0
        if not keep.any():
            return None
        kept = keep[owner] & hit
        per_seed = np.bincount(seed_of[kept], minlength=len(seed_runs))
        return pls[keep], per_pl[keep], per_seed

    def _playlist(self, col: int) -> dict[str, Any]:
        p = int(self.train_pids[col])
        return {"pid": self.corpus.pids[p], "caption": self.corpus.caption(p)}


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n best finite scores, best first (ties by index)."""
    finite = np.flatnonzero(np.isfinite(scores))
    if finite.size > n:
        part = np.argpartition(-scores[finite], n - 1)[:n] if n > 0 else np.zeros(0, np.int64)
        finite = finite[part]
    return finite[np.lexsort((finite, -scores[finite]))]


def _check_k(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise QueryError(f"k must be between 1 and {MAX_K}, got {k}")


def _vocab(run: Run, corpus: Corpus) -> np.ndarray:
    from dynplayer.eval.runner import run_vocab

    return run_vocab(run, corpus)


__all__ = ["Answer", "LibraryModel", "MAX_K"]
