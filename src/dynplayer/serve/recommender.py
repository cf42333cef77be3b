"""One recommender interface, two implementations: exact (numpy, in memory) and pgvector (HNSW).

Both answer the same four questions: tracks similar to a track, the continuation of a partial
playlist (mean of the seed vectors, seeds masked), tracks for a free-text query (the text
model's query vector -> the most similar training playlists -> `aggregate`), and track lookup by
name or artist. Scores are cosine similarities of L2-normalised vectors.
"""

from __future__ import annotations

import abc
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from dynplayer.diversity import check_max_per_artist, pool_size
from dynplayer.errors import QueryError
from dynplayer.ids import normalize_track_id
from dynplayer.run import l2_normalize, unit_rows
from dynplayer.serve import batching
from dynplayer.serve.answers import (
    K_MAX,
    QUERY_MAX,
    SEEDS_MAX,
    TEXT_MAX,
    Continuation,
    ContinuationRanker,
    DatabaseUnavailable,
    TextAnswer,
    TextModelMissing,
    TrackInfo,
    TrackResult,
    UnknownTrackError,
    check_k,
    check_name,
    check_seeds,
    check_text,
    text_playlists_of,
    unknown_error,
    varied,
)
from dynplayer.serve.ranking import qb_bias, top_k, top_playlists_exact
from dynplayer.serve.track_search import FUZZY_CUTOFF, TrackMatcher
from dynplayer.store.catalog import Catalog
from dynplayer.store.params import (
    EF_SEARCH_FACTOR,
    EF_SEARCH_MIN,
    EXACT_PLAYLISTS_MAX,
    ef_search_single,
)
from dynplayer.text.api import TextSearcherProtocol
from dynplayer.text.query import check_query

if TYPE_CHECKING:  # the database driver is imported by the pgvector backend only (0.2 s)
    import psycopg
    from psycopg_pool import ConnectionPool


class Recommender(abc.ABC):
    """Answers similar / continue / text / search for one model version."""

    version: str
    searcher: TextSearcherProtocol | None
    text_playlists: int = 50
    # With a ranker (RUN_DIR/ranker/), continuations come from it on every backend; its
    # candidates and features are computed in memory, the backend gives names and artists.
    reranker: ContinuationRanker | None = None

    @property
    def has_text(self) -> bool:
        return self.searcher is not None

    def similar(self, track_id: str, k: int = 20,
                max_per_artist: int | None = None) -> list[TrackResult]:
        """The k tracks nearest to `track_id` (an id, `spotify:track:ID` or a track link) by
        cosine, the track itself excluded; at most `max_per_artist` per artist (None: the
        default, `dynplayer.diversity`; 0: no cap)."""
        check_k(k)
        n = check_max_per_artist(max_per_artist, "similar")
        found = self._nearest_to_seeds([normalize_track_id(track_id)], pool_size(k, n),
                                       single=True).tracks
        return varied(found, n, k)

    def continue_playlist(self, track_ids: Sequence[str], k: int = 20, *,
                          name: str | None = None,
                          max_per_artist: int | None = None) -> Continuation:
        """Next tracks for a partial playlist: the second stage when the run has one (reading
        the playlist's `name` as evidence), else the mean of the known seeds' vectors; seeds
        masked; at most `max_per_artist` per artist (see `similar`). With no known seed, a name
        is answered by the text model.

        Unknown ids are reported in `unknown`; it is an error when no seed is known and there
        is no name, and when there are neither seeds nor a name.
        """
        check_k(k)
        name = check_name(name)
        if not track_ids and name is None:
            raise QueryError("give track_ids, a name, or both")
        seeds = check_seeds(track_ids) if track_ids else []
        n = check_max_per_artist(max_per_artist, "continue")
        by_name = name is not None and self.searcher is not None
        if self.reranker is None:
            if seeds:
                try:
                    found = self._nearest_to_seeds(seeds, pool_size(k, n), single=False)
                    return Continuation(varied(found.tracks, n, k), found.seeds, found.unknown)
                except UnknownTrackError:
                    if not by_name:
                        raise
            return self._by_name(name, k, seeds, max_per_artist)
        known = [t for t in seeds if self.reranker.known(t)]
        if not known:
            if seeds and not by_name:
                raise unknown_error(seeds, False)
            return self._by_name(name, k, seeds, max_per_artist)
        ranked = self.reranker.rank(known, pool_size(k, n), name)
        info = self._track_info([t for t, _ in ranked])
        none = TrackInfo("", None, None)
        return Continuation(
            tracks=varied([TrackResult(t, float(s), info.get(t, none).name,
                                        info.get(t, none).artist) for t, s in ranked], n, k),
            seeds=known, unknown=[t for t in seeds if not self.reranker.known(t)],
            method="two-stage")

    def _by_name(self, name: str | None, k: int, unknown: list[str],
                 max_per_artist: int | None) -> Continuation:
        """A continuation with no known seed: the text model's answer to the name."""
        if name is None or self.searcher is None:
            raise TextModelMissing("a name alone needs a text model (run `dynplayer "
                                   "train-text`)")
        return Continuation(tracks=self.text(name, k, max_per_artist), seeds=[], unknown=unknown,
                            method="text")

    def text(self, text: str, k: int = 20,
             max_per_artist: int | None = None) -> list[TrackResult]:
        """Tracks for a free-text query, each with the playlists that contributed to it."""
        return self.text_answer(text, k, max_per_artist).tracks

    def text_answer(self, text: str, k: int = 20,
                    max_per_artist: int | None = None) -> TextAnswer:
        """`text`, with the playlists the tracks were aggregated from (what the CLI prints),
        how well the query matched them, at most `max_per_artist` per artist (see
        `similar`)."""
        check_k(k)
        n = check_max_per_artist(max_per_artist, "text")
        query = check_text(text)
        if self.searcher is None:
            raise TextModelMissing("this model has no text model (run `dynplayer train-text`)")
        bridged = getattr(self.searcher, "bridged", None)
        searched_as = bridged(query) if bridged is not None else None
        query = searched_as or query
        # answered with the requests that wait beside it (a bad query is refused before that)
        req = batching.TextRequest(check_query(query), query, pool_size(k, n))
        if self._searches_in_memory():
            result = self._texts.run(req)
        else:  # searched in the database: only the encoding batched, the searches overlap there
            rows, sims = self._top_playlists(self._encoder.encode(req.encoded),
                                             self.text_playlists)
            result = self.searcher.aggregate(rows, sims, req.k, query=query)
        hits = result.tracks
        info = self._track_info([h.track_id for h in hits])
        unknown = TrackInfo("", None, None)
        return TextAnswer(
            tracks=varied([TrackResult(track_id=h.track_id, score=float(h.score),
                                        name=info.get(h.track_id, unknown).name,
                                        artist=info.get(h.track_id, unknown).artist,
                                        because=list(h.because)) for h in hits], n, k),
            playlists=list(result.playlists), searched_as=searched_as,
            confidence=result.confidence, match=result.match)

    @cached_property
    def _texts(self) -> batching.Batcher[batching.TextRequest, Any]:
        """Text requests answered in batches, one thread at a time (`serve.batching`; two
        threads racing on first use may build two batchers: one is dropped)."""
        return batching.text_batcher(self.searcher,
                                     lambda v: self._top_playlists(v, self.text_playlists))

    @cached_property
    def _encoder(self) -> batching.BatchingEncoder:
        """The encoding alone batched, for playlist searches that run in a database."""
        return batching.BatchingEncoder(lambda t: batching.encode_texts(self.searcher, t))

    def _searches_in_memory(self) -> bool:
        """Whether the text model's playlist search runs in this process (then by the thread
        that encoded the batch)."""
        return True

    def search_tracks(self, q: str, limit: int = 10,
                      cutoff: float = FUZZY_CUTOFF) -> list[TrackInfo]:
        """Tracks by name or artist, case-, accent- and typo-tolerant (`TrackMatcher`): those
        holding `q`, then every word of it, most popular first; near misses scoring `cutoff`
        (0-100) or more only when nothing matched."""
        q = q.strip()
        if not q:
            raise QueryError("q is empty")
        if len(q) > QUERY_MAX:
            raise QueryError(f"q is {len(q)} characters long; at most {QUERY_MAX} are allowed")
        if not 1 <= limit <= 50:
            raise QueryError(f"limit must be from 1 to 50, got {limit}")
        return self._search(q, limit, cutoff)

    def track_info(self, track_ids: Sequence[str]) -> dict[str, TrackInfo]:
        """Names and artists of the known ones among `track_ids` (ids, URIs or links)."""
        return self._track_info([normalize_track_id(t) for t in track_ids])

    def ping(self) -> bool:
        """Is the backing store reachable?"""
        return True

    def close(self) -> None:  # noqa: B027 (optional hook, nothing to release by default)
        """Release connections."""

    # ---- implementation hooks ------------------------------------------------------------
    @abc.abstractmethod
    def _nearest_to_seeds(self, seeds: list[str], k: int, *, single: bool) -> Continuation: ...

    @abc.abstractmethod
    def _top_playlists(self, qvec: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows into the searcher's playlist_vectors and their cosine similarity, best first."""

    @abc.abstractmethod
    def _track_info(self, track_ids: list[str]) -> dict[str, TrackInfo]: ...

    @abc.abstractmethod
    def _search(self, q: str, limit: int, cutoff: float) -> list[TrackInfo]: ...


class ExactRecommender(Recommender):
    """Brute-force cosine over the vectors in memory: the reference answer."""

    def __init__(self, catalog: Catalog, searcher: TextSearcherProtocol | None = None,
                 *, text_playlists: int = 50) -> None:
        self.catalog = catalog
        self.version = catalog.version
        self.searcher = searcher
        self.text_playlists = text_playlists
        self._row = {t: i for i, t in enumerate(catalog.track_ids)}
        self._vectors = unit_rows(catalog.vectors)

    @cached_property
    def matcher(self) -> TrackMatcher:
        """Track lookup over this catalog's names (built on first use)."""
        c = self.catalog
        return TrackMatcher(c.names, c.artists, c.popularity)

    def _nearest_to_seeds(self, seeds: list[str], k: int, *, single: bool) -> Continuation:
        known = [s for s in seeds if s in self._row]
        unknown = [s for s in seeds if s not in self._row]
        if not known:
            raise unknown_error(seeds, single)
        rows = np.array([self._row[s] for s in known], dtype=np.int64)
        query = l2_normalize(self._vectors[rows].mean(axis=0, keepdims=True))[0]
        scores = self._vectors @ query
        scores[rows] = -np.inf
        top = top_k(scores, min(k, scores.shape[0] - rows.shape[0]))
        c = self.catalog
        return Continuation(
            tracks=[TrackResult(c.track_ids[i], float(scores[i]), c.names[i], c.artists[i])
                    for i in top],
            seeds=known, unknown=unknown)

    def _top_playlists(self, qvec: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        assert self.searcher is not None  # `text_answer` checks first
        return top_playlists_exact(np.asarray(self.searcher.playlist_vectors, np.float32),
                                   qvec, n, qb_bias(self.searcher))

    def _track_info(self, track_ids: list[str]) -> dict[str, TrackInfo]:
        c, row = self.catalog, self._row
        known = [(t, row[t]) for t in track_ids if t in row]
        return {t: TrackInfo(t, c.names[i], c.artists[i]) for t, i in known}

    def _search(self, q: str, limit: int, cutoff: float) -> list[TrackInfo]:
        c = self.catalog
        return [TrackInfo(c.track_ids[i], c.names[i], c.artists[i])
                for i in self.matcher.search(q, limit, cutoff)]


class PgvectorRecommender(Recommender):
    """Approximate search in PostgreSQL with pgvector HNSW indexes (cosine)."""

    def __init__(self, pool: ConnectionPool, version: str,
                 searcher: TextSearcherProtocol | None = None, *, text_playlists: int = 50,
                 ef_search_min: int = EF_SEARCH_MIN,
                 ef_search_factor: float = EF_SEARCH_FACTOR,
                 exact_playlists_max: int = EXACT_PLAYLISTS_MAX) -> None:
        self.pool = pool
        self.version = version
        self.searcher = searcher
        self.text_playlists = text_playlists
        self.ef_search_min = ef_search_min
        self.ef_search_factor = ef_search_factor
        self.exact_playlists_max = exact_playlists_max
        self._pid_row = {} if searcher is None else \
            {p: i for i, p in enumerate(searcher.playlist_pids)}
        self._names: dict[str, tuple[str | None, str | None]] | None = None
        self._matcher: tuple[TrackMatcher, list[tuple[str, str | None, str | None]]] | None = \
            None
        self._names_lock = threading.Lock()
        self._track_count: int | None = None
        # hnsw.ef_search currently set on each pooled connection (dropped with the connection).
        self._ef_of: weakref.WeakKeyDictionary[psycopg.Connection[Any], int] = \
            weakref.WeakKeyDictionary()

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        # A text request takes a connection only for its playlist search, never while its
        # query waits for the (batched) encoder; names come from memory after the first load.
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            with self.pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise DatabaseUnavailable(
                f"the database is unavailable (no connection within {self.pool.timeout:g}s)"
            ) from exc
        except psycopg.errors.UndefinedTable as exc:
            raise DatabaseUnavailable("nothing is indexed in the database (run `dynplayer "
                                      "index RUN_DIR`)") from exc
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"the database is unavailable: {str(exc).strip()}") \
                from exc

    def _ef_search(self, rows: int, conn: psycopg.Connection[Any] | None = None) -> int:
        """hnsw.ef_search for `rows` rows; with `conn`, for one track's neighbours (growing
        with the tracks table: `ef_search_single`)."""
        if conn is not None and self._track_count is None:
            from dynplayer.store.buffers import planned_rows
            self._track_count = planned_rows(conn, "tracks")
        return ef_search_single(rows, (conn is not None and self._track_count) or 0,
                                minimum=self.ef_search_min, factor=self.ef_search_factor)

    def _knn(self, conn: psycopg.Connection[Any], query: str, params: list[Any],
             ef: int) -> list[tuple[Any, ...]]:
        """An HNSW query at hnsw.ef_search `ef` (pgvector returns at most ef_search rows). The
        setting lives on the connection, so it is sent only when it changes, together with
        enable_seqscan = off: on a small table the planner otherwise prefers an exact
        sequential scan (25 ms on MPD's playlists) whenever ef_search is below ~200."""
        if self._ef_of.get(conn) != ef:
            conn.execute("SELECT set_config('hnsw.ef_search', %s, false), "
                         "set_config('enable_seqscan', 'off', false)", [str(ef)])
            self._ef_of[conn] = ef
        return conn.execute(query, params).fetchall()

    def _nearest_to_seeds(self, seeds: list[str], k: int, *, single: bool) -> Continuation:
        with self._conn() as conn:
            found = dict(conn.execute(
                "SELECT track_id, vector FROM tracks WHERE track_id = ANY(%s)", [seeds]
            ).fetchall())
            known = [s for s in seeds if s in found]
            unknown = [s for s in seeds if s not in found]
            if not known:
                raise unknown_error(seeds, single)
            stacked = np.stack([np.asarray(found[s].to_numpy(), np.float32) for s in known])
            query = l2_normalize(stacked.mean(axis=0, keepdims=True))[0]
            limit = k + len(known)
            rows = self._knn(conn, "SELECT track_id, name, artist, 1 - (vector <=> %s) FROM "
                             "tracks ORDER BY vector <=> %s LIMIT %s", [query, query, limit],
                             self._ef_search(limit, None if len(known) > 1 else conn))
        masked = set(known)
        tracks = [TrackResult(t, float(s), n, a) for t, n, a, s in rows if t not in masked][:k]
        return Continuation(tracks=tracks, seeds=known, unknown=unknown)

    def _searches_in_memory(self) -> bool:
        return self.searcher is not None and \
            self.searcher.playlist_vectors.shape[0] <= self.exact_playlists_max

    def _top_playlists(self, qvec: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        assert self.searcher is not None
        if self._searches_in_memory():
            return top_playlists_exact(self.searcher.playlist_vectors, qvec, n,
                                       qb_bias(self.searcher))
        with self._conn() as conn:
            # The column is halfvec (see dynplayer.store.db): a few more candidates than wanted
            # are fetched and re-ranked below in float32, so half-precision rounding cannot
            # swap a playlist at the edge of the top n for a near-tie.
            from pgvector import HalfVector

            half = HalfVector(qvec)
            ef = self._ef_search(n)
            rows = self._knn(conn, "SELECT pid FROM playlists ORDER BY text_vector <=> %s "
                             "LIMIT %s", [half, min(n + n // 2 + 10, ef)], ef)
        # Rows are mapped through pids, so a table swapped in by a reindex of another run can
        # never point `aggregate` at the wrong playlist.
        found = np.array([self._pid_row[p] for (p,) in rows if p in self._pid_row],
                         dtype=np.int64)
        # The index stores half precision, so the similarities reported (and the order) are
        # recomputed in float32 from the searcher's own vectors: the exact path's numbers.
        assert self.searcher is not None
        sims = np.asarray(self.searcher.playlist_vectors[found] @ qvec, dtype=np.float32)
        order = np.lexsort((found, -sims))[:n]
        return found[order], sims[order]

    def _rows(self, columns: list[str]) -> list[tuple[Any, ...]]:
        from dynplayer.store.db import read_track_rows  # (the driver: this backend only)

        with self._conn() as conn:
            return read_track_rows(conn, columns)

    def _track_info(self, track_ids: list[str]) -> dict[str, TrackInfo]:
        # Names and artists of this model version are read once and kept in memory (a text
        # answer then needs no second query); the service reads them as it loads the model.
        if self._names is None:
            with self._names_lock:
                if self._names is None:
                    self._names = {t: (n, a) for t, n, a in
                                   self._rows(["track_id", "name", "artist"])}
        names = self._names
        return {t: TrackInfo(t, *names[t]) for t in track_ids if t in names}

    def _search(self, q: str, limit: int, cutoff: float) -> list[TrackInfo]:
        # The tracks' names are read once per model version and searched in memory by the
        # exact backend's matcher, so both backends find the same tracks in the same order.
        if self._matcher is None:
            with self._names_lock:
                if self._matcher is None:
                    rows = self._rows(["track_id", "name", "artist", "popularity"])
                    info = [(t, n, a) for t, n, a, _ in rows]
                    self._matcher = (TrackMatcher([n for _, n, _ in info],
                                                  [a for _, _, a in info],
                                                  [int(p or 0) for *_, p in rows]), info)
        matcher, info = self._matcher
        return [TrackInfo(*info[i]) for i in matcher.search(q, limit, cutoff)]

    def ping(self) -> bool:
        import psycopg

        try:
            with self._conn() as conn:
                conn.execute("SELECT 1 FROM tracks LIMIT 1")
            return True
        except (DatabaseUnavailable, psycopg.Error):
            return False

    def close(self) -> None:
        self.pool.close()


# The answer types and checks live in `serve.answers`; importing them from here keeps working.
__all__ = ["K_MAX", "QUERY_MAX", "SEEDS_MAX", "TEXT_MAX", "Continuation", "ContinuationRanker",
           "DatabaseUnavailable", "ExactRecommender", "PgvectorRecommender", "Recommender",
           "TextAnswer", "TextModelMissing", "TrackInfo", "TrackResult", "UnknownTrackError",
           "check_k", "check_seeds", "check_text", "text_playlists_of"]
