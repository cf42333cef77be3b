"""Keyword -> tracks: `TextSearcher`, the implementation of `dynplayer.text.api`.

text -> query vector -> top-N most similar training playlists (cosine) -> each track scored by
sum over those playlists of occurrence x similarity^power -> (pseudo-relevance feedback: those
tracks re-ranked by their cosine, in the track model's space, with the weighted mean of the
playlists' mean track vectors) -> top K. `aggregate` is the second half on its own, so serving
can replace the exact playlist search with pgvector HNSW.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from dynplayer.config import from_dict
from dynplayer.errors import ArtifactError, ConfigError, QueryError
from dynplayer.run import Run, l2_normalize, unit_rows
from dynplayer.text.aggregate import (
    aggregate_scores,
    distinct,
    feedback_scores,
    merge_metadata,
    playlist_track_means,
    top_rows,
)
from dynplayer.text.api import PlaylistHit, SearchResult, TextSearcherProtocol, TrackHit
from dynplayer.text.confidence import Calibration, Vocabulary
from dynplayer.text.config import TextConfig
from dynplayer.text.encoders import TextEncoder, make_encoder
from dynplayer.text.loanwords import HANGUL_WORD, LoanwordBridge
from dynplayer.text.metadata import MetadataMatch
from dynplayer.text.query import MAX_QUERY_CHARS, check_query
from dynplayer.text.space import (
    compose_playlist_vectors,
    query_side,
    stored_projection,
    stored_vectors_hash,
    wordless,
)
from dynplayer.topk import rows_per_chunk, top_k

MAX_K = 1000


def check_k(k: int) -> int:
    if not 1 <= k <= MAX_K:
        raise QueryError(f"k must be between 1 and {MAX_K}, got {k}")
    return k


class TextSearcher(TextSearcherProtocol):
    """Search over a trained text model (RUN_DIR/text/); see `dynplayer.text.api`."""

    def __init__(self, path: Path, cfg: TextConfig, weights: dict[str, np.ndarray],
                 joint: np.ndarray, captions_x: np.ndarray, occ: sp.csr_matrix,
                 pids: list[str], captions: list[str], tracks: dict[str, list[Any]],
                 encoder: TextEncoder | None = None, ngram_state: Path | None = None,
                 track_vectors: np.ndarray | None = None) -> None:
        self.path = path
        self.cfg = cfg
        self.weights = weights
        self.joint = joint
        self.captions_x = captions_x
        self.occ = occ
        self.playlist_pids = pids
        self.playlist_captions = captions
        self.track_ids: list[str] = tracks["track_id"]
        self.track_names: list[str | None] = tracks["name"]
        self.track_artists: list[str | None] = tracks["artist"]
        # genres per track (tracks.json from before they were stored: none)
        self.track_genres: list[list[str]] = tracks.get("genres") or [[] for _ in self.track_ids]
        self.metadata = MetadataMatch(self.track_artists, self.track_genres)
        self._encoder = encoder
        self._ngram_state = ngram_state
        # how well a query matched the captions (text/confidence.json, text/words.txt)
        self.calibration: Calibration | None = None
        self.vocabulary: Vocabulary | None = None
        self.no_words = wordless(captions)  # never hubs of caption retrieval
        self._vectors = compose_playlist_vectors(joint, captions_x, cfg, self.no_words)
        # search_dims: the space on its first principal directions (queries projected alike),
        # as train-text stored it (fitted here when it did not)
        self.projection = stored_projection(path, self._vectors, weights, captions_x, cfg)
        if self.projection is not None:
            self._vectors = l2_normalize(self._vectors @ self.projection)
        self._qb_bias: np.ndarray | None = None
        # The track model's vectors (V, d) in track_ids order, L2-normalised, and each playlist's
        # mean of them: pseudo-relevance feedback needs both, computed once here.
        self.track_vectors: np.ndarray | None = None
        self.playlist_means: np.ndarray | None = None
        if track_vectors is not None:
            if track_vectors.shape[0] != occ.shape[1]:
                raise ArtifactError(f"{path}: {track_vectors.shape[0]} track vectors for "
                                    f"{occ.shape[1]} vocabulary tracks")
            self.track_vectors = unit_rows(track_vectors)
            self.playlist_means = playlist_track_means(occ, self.track_vectors)
        elif cfg.prf_weight > 0:
            raise ArtifactError(f"{path}: prf_weight > 0 needs the run's track vectors "
                                "(vectors.npy, ids.txt beside text/); or set prf_weight=0")

    # ---- loading -----------------------------------------------------------------------------
    @classmethod
    def load(cls, run_dir: Path, *, text_dir: Path | None = None, run: Run | None = None,
             **overrides: Any) -> TextSearcher:
        """Read RUN_DIR/text/ (written by `dynplayer train-text`; or `text_dir`, a text model
        being written for RUN_DIR); `overrides` change search settings of the TextConfig
        (retrieval, caption_weight, top_playlists, ...); `run`: the run at RUN_DIR when the
        caller has loaded it already."""
        d = Path(text_dir) if text_dir is not None else Path(run_dir) / "text"
        need = ["config.json", "model.npz", "joint.npy", "captions.npy", "occurrences.npz",
                "pids.txt", "captions.json", "tracks.json"]
        if not d.is_dir():
            raise ArtifactError(f"{run_dir}: no text model (run `dynplayer train-text` first)")
        missing = [f for f in need if not (d / f).exists()]
        if missing:
            raise ArtifactError(f"{d}: incomplete text model (missing {', '.join(missing)})")
        try:
            meta = json.loads((d / "config.json").read_text())
            cfg = from_dict(TextConfig, {**meta["text"], **overrides})
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ArtifactError(f"{d}/config.json: unreadable text model config ({exc})") from exc
        _check_search_config(cfg)
        run = _fresh_run(Path(run_dir), meta, run)
        with np.load(d / "model.npz", allow_pickle=False) as z:
            weights = {k: z[k] for k in z.files}
        with np.load(d / "occurrences.npz", allow_pickle=False) as z:
            shape = tuple(int(s) for s in z["shape"])
            occ = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=shape)
        pids = (d / "pids.txt").read_text().splitlines()
        tracks = json.loads((d / "tracks.json").read_text())
        track_vectors = None
        if run is not None and run.ids == tracks["track_id"]:
            track_vectors = run.vectors  # the same tracks in the same order: no 170 MB copy
        elif run is not None:
            row_of = run.index_of()
            run_rows = np.array([row_of.get(t, -1) for t in tracks["track_id"]], dtype=np.int64)
            if (run_rows < 0).any():
                raise ArtifactError(f"{run_dir}: {int((run_rows < 0).sum())} vocabulary tracks "
                                    "have no track vector; rerun `dynplayer train-text`")
            track_vectors = run.vectors[run_rows]
        out = cls(d, cfg, weights, np.load(d / "joint.npy"), np.load(d / "captions.npy"), occ,
                  pids, json.loads((d / "captions.json").read_text()), tracks,
                  ngram_state=d / "ngram.npz" if cfg.encoder == "ngram" else None,
                  track_vectors=track_vectors)
        if (d / "confidence.json").exists() and (d / "words.txt").exists():
            out.calibration = Calibration.load(d / "confidence.json")
            out.vocabulary = Vocabulary.load(d / "words.txt")
        return out

    @property
    def encoder(self) -> TextEncoder:
        if self._encoder is None:
            self._encoder = make_encoder(self.cfg.encoder, state=self._ngram_state)
        return self._encoder

    @cached_property
    def track_joint(self) -> np.ndarray:
        return np.load(self.path / "track_joint.npy")

    # ---- the protocol ------------------------------------------------------------------------
    @property
    def playlist_vectors(self) -> np.ndarray:
        return self._vectors

    def encode_queries(self, texts: Sequence[str], retrieval: str | None = None) -> np.ndarray:
        """(n, d) L2-normalised query vectors for already-normalised texts."""
        raw = self.encoder.encode(list(texts))
        mode = retrieval or self.cfg.retrieval
        return self.project(self._query_side(raw, mode), mode)

    def _query_side(self, raw: np.ndarray, mode: str) -> np.ndarray:
        return query_side(self.weights, raw, mode, self.cfg.caption_weight)

    def project(self, vectors: np.ndarray, mode: str | None = None) -> np.ndarray:
        """Query-side vectors of the search space into the space of `playlist_vectors` (the
        search_dims projection, L2-normalised; unchanged without one or for another mode)."""
        if self.projection is None or (mode or self.cfg.retrieval) != self.cfg.retrieval:
            return vectors
        out: np.ndarray = l2_normalize(np.asarray(vectors, np.float32) @ self.projection)
        return out

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode_queries([check_query(text)])[0]

    def bridged(self, text: str) -> str | None:
        """The normalised query with its Korean loanwords replaced by English words of the
        captions and genres (`text.loanwords`), or None when nothing was replaced (or the
        bridge is off: `loanwords=false`, or an encoder other than USE)."""
        norm = check_query(text)
        if not (self.cfg.loanwords and self.cfg.encoder == "use"):
            return None
        if not HANGUL_WORD.search(norm):  # nothing to bridge: the bridge is not even built
            return None
        out = self.loanword_bridge.rewrite(norm)
        return out if out != norm and len(out) <= MAX_QUERY_CHARS else None

    @cached_property
    def loanword_bridge(self) -> LoanwordBridge:
        genre = self.metadata.fields["genre"]
        df = np.diff(genre.postings.indptr)
        # The encoder is called only for a Hangul word not seen before (then cached); USE's
        # numpy forward pass keeps no state between calls, so API threads may share it.
        return LoanwordBridge.from_texts(self.playlist_captions,
                                         {w: int(df[i]) for w, i in genre.vocab.items()},
                                         self.encoder.encode)

    def top_playlists(self, query_vectors: np.ndarray,
                      m: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The m best playlist rows per query and their cosine similarities, best first.

        With query-bank normalisation the rows are chosen by cosine minus the playlist's
        inverted-softmax bias, but the weights stay cosines.
        """
        m = self.cfg.top_playlists if m is None else m
        # queries in chunks of at most SCORE_CHUNK scores: calibrating `train-text` on 25,000
        # validation captions against 187,500 playlists (250k) asked for 17.5 GiB at once
        step = rows_per_chunk(self._vectors.shape[0])
        if query_vectors.shape[0] > step:
            parts = [self.top_playlists(query_vectors[i:i + step], m)
                     for i in range(0, query_vectors.shape[0], step)]
            return np.concatenate([r for r, _ in parts]), np.concatenate([v for _, v in parts])
        sims = query_vectors @ self._vectors.T
        if self.cfg.qbnorm_beta <= 0:
            return top_rows(sims, m)
        rows, _ = top_rows(sims - self.qb_bias[None, :], m)
        return rows, np.take_along_axis(sims, rows, axis=1)

    @property
    def qb_bias(self) -> np.ndarray:
        """Inverted-softmax bias (QB-Norm's IS, applied to every query: no activation set):
        log sum_b exp(beta s_bj) / beta per playlist j, over a query bank of the training
        captions (each playlist's own caption left out)."""
        if self._qb_bias is None:
            from dynplayer.text.hubness import inverted_softmax_bias

            bank = self.encode_bank()
            self._qb_bias = inverted_softmax_bias(bank @ self._vectors.T, self.cfg.qbnorm_beta,
                                                  exclude_diagonal=True)
        return self._qb_bias

    def encode_bank(self) -> np.ndarray:
        """Query-side vectors of the training captions (the query bank), without re-encoding."""
        return self.project(self._query_side(self.captions_x, self.cfg.retrieval))

    def aggregate(self, playlist_rows: np.ndarray, similarities: np.ndarray, k: int,
                  query: str = "") -> SearchResult:
        check_k(k)
        rows = np.asarray(playlist_rows, dtype=np.int64).ravel()
        sims = np.asarray(similarities, dtype=np.float32).ravel()
        if rows.shape != sims.shape:
            raise QueryError(f"{rows.shape[0]} playlist rows but {sims.shape[0]} similarities")
        if rows.size and (rows.min() < 0 or rows.max() >= self.occ.shape[0]):
            raise QueryError("playlist row out of range")
        pids, caps = self.playlist_pids, self.playlist_captions
        playlists = [PlaylistHit(pids[r], caps[r], s)  # plain ints and floats index faster
                     for r, s in zip(rows.tolist(), sims.tolist(), strict=True)]
        if rows.size == 0:
            return SearchResult(query, [], [], *self.judge(sims, query))
        w = np.clip(sims, 0.0, None) ** self.cfg.sim_power
        # The occurrences of the chosen playlists straight from the CSR arrays (scipy's fancy
        # indexing costs more than the arithmetic at this size).
        ptr, idx, dat = self.occ.indptr, self.occ.indices, self.occ.data
        lens = ptr[rows + 1] - ptr[rows]
        owner = np.repeat(np.arange(rows.shape[0]), lens)
        # Position of each occurrence in the CSR arrays: its playlist's start + its offset there.
        pos = ptr[rows][owner] + np.arange(owner.shape[0]) - np.repeat(np.cumsum(lens) - lens,
                                                                        lens)
        # Everything below works on the candidate tracks alone (those of the retrieved
        # playlists, and those whose artist or genre the query names), never on arrays the
        # size of the catalogue: at 166k tracks those cost more than the search itself.
        held, slot = distinct(idx[pos])
        contrib = dat[pos] * w[owner]
        scores: np.ndarray = np.bincount(slot, weights=contrib, minlength=held.shape[0])
        if self.cfg.prf_weight > 0 and self.track_vectors is not None:
            scores = self._feedback_on(held, scores, rows, w)
        meta, extra, full = self._metadata_of(query)
        judged = self._judged(sims, query, full)
        if extra.shape[0]:
            if not (self.cfg.prf_weight > 0 and self.track_vectors is not None):
                scores = scores / max(float(scores.max(initial=0.0)), 1e-30)
            held, scores, slot = merge_metadata(held, scores.astype(np.float32), slot, meta,
                                             extra, k)
        n_pos = int((scores > 0).sum())
        if n_pos == 0:
            return SearchResult(query, playlists, [], *judged)
        top = top_k(scores, min(k, n_pos))  # positions into held (ties by track index)
        rank_of = np.full(held.shape[0], -1, dtype=np.int64)
        rank_of[top] = np.arange(top.shape[0])
        sel = np.flatnonzero((rank_of[slot] >= 0) & (contrib > 0))
        order = np.lexsort((-contrib[sel], rank_of[slot[sel]]))  # by track rank, then contribution
        sel = sel[order]
        bounds = np.searchsorted(rank_of[slot[sel]], np.arange(top.shape[0] + 1)).tolist()
        who = owner[sel].tolist()  # plain lists: per-element numpy indexing costs more here
        tracks = [TrackHit(self.track_ids[t], s, [playlists[i] for i in who[lo:hi]])
                  for t, s, lo, hi in zip(held[top].tolist(), scores[top].tolist(),
                                          bounds[:-1], bounds[1:], strict=True)]
        return SearchResult(query, playlists, tracks, *judged)

    def _metadata_of(self, query: str) -> tuple[np.ndarray, np.ndarray, bool]:
        """The query's metadata match where not 0 (track indices, values; `with_metadata`)
        and whether it is complete (`judge`)."""
        if not query or self.metadata.empty:
            return np.zeros(0, np.int32), np.zeros(0, np.float32), False
        tracks, values, full = self.metadata.sparse(query, self.match_weights,
                                                    self.cfg.match_power)
        if max(self.match_weights.values()) <= 0:
            return np.zeros(0, np.int32), np.zeros(0, np.float32), full
        return tracks, values, full  # every value > 0: weights and shares are

    def _judged(self, sims: np.ndarray, query: str,
                full_match: bool) -> tuple[float | None, str | None]:
        if self.calibration is None or self.vocabulary is None:
            return None, None
        return self.calibration.judge(sims, query, self.vocabulary, full_match=full_match)

    def judge(self, sims: np.ndarray, query: str) -> tuple[float | None, str | None]:
        """(confidence, verdict) of a query with these playlist similarities (best first), by
        the model's calibration (`text.confidence`); (None, None) without one."""
        if self.calibration is None or self.vocabulary is None:
            return None, None
        return self._judged(sims, query, self.metadata.complete(query))

    @property
    def match_weights(self) -> dict[str, float]:
        return {"artist": self.cfg.artist_weight, "genre": self.cfg.genre_weight}

    def with_metadata(self, scores: np.ndarray, queries: Sequence[str],
                      scaled: bool | None = None) -> np.ndarray:
        """(n, V) aggregated `scores` plus the queries' metadata match (`text.metadata`). Scores
        not `scaled` by the feedback (default: this searcher's setting) are first divided by
        each query's maximum."""
        if max(self.match_weights.values()) <= 0 or self.metadata.empty:
            return scores
        m = self.metadata.batch(queries, self.match_weights, self.cfg.match_power)
        if not m.any():
            return scores
        if scaled is None:
            scaled = self.cfg.prf_weight > 0 and self.track_vectors is not None
        if not scaled:
            scores = scores / np.maximum(scores.max(axis=1, keepdims=True), 1e-30)
        out: np.ndarray = (scores + m).astype(np.float32)
        return out

    def _feedback(self, scores: np.ndarray, rows: np.ndarray, w: np.ndarray) -> np.ndarray:
        """`feedback_scores` for one query's scores over every track (`rank.title`)."""
        return self._feedback_on(np.arange(scores.shape[0]), scores, rows, w)

    def _feedback_on(self, held: np.ndarray, scores: np.ndarray, rows: np.ndarray,
                     w: np.ndarray) -> np.ndarray:
        """`feedback_scores` for one query, on the tracks `held` (sorted indices) and their
        aggregated `scores` alone: only those holding a score > 0 get a cosine."""
        assert self.track_vectors is not None and self.playlist_means is not None
        out = np.zeros_like(scores)
        pos = scores > 0
        if not pos.any():
            return out
        q = w.astype(np.float32) @ self.playlist_means[rows]
        q /= max(float(np.linalg.norm(q)), 1e-12)
        # np.take gathers the rows ~25% faster than fancy indexing (the same values); the
        # gather (~3,600 rows of the whole catalogue's vectors) is most of this function.
        cos = np.take(self.track_vectors, held[pos], axis=0) @ q
        out[pos] = scores[pos] / scores[pos].max() + self.cfg.prf_weight * np.clip(cos, 0.0, None)
        return out

    def search(self, text: str, k: int = 20, bridge: bool = True) -> SearchResult:
        """`bridge`: Korean loanwords bridged first (`bridged`), as in serving."""
        check_k(k)
        text = (self.bridged(text) if bridge else None) or text
        q = self.encode_query(text)
        rows, vals = self.top_playlists(q[None, :])
        return self.aggregate(rows[0], vals[0], k, query=text)

    def track_label(self, track_id: str) -> str:
        i = self._track_index.get(track_id)
        if i is None:
            return track_id
        name, artist = self.track_names[i], self.track_artists[i]
        if name is None and artist is None:
            return f"{track_id} (no name or artist in the corpus)"
        return f"{name or track_id} - {artist or 'unknown artist'}"

    @cached_property
    def _track_index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.track_ids)}


def _check_search_config(cfg: TextConfig) -> None:
    if cfg.retrieval not in ("joint", "caption", "hybrid"):
        raise ConfigError(f"retrieval must be joint, caption or hybrid, not {cfg.retrieval!r}")
    if not 0.0 <= cfg.caption_weight <= 1.0:
        raise ConfigError(f"caption_weight must be in [0, 1], got {cfg.caption_weight}")
    if not 1 <= cfg.top_playlists <= 10_000:
        raise ConfigError(f"top_playlists must be in 1..10000, got {cfg.top_playlists}")
    if cfg.search_dims < 0:
        raise ConfigError(f"search_dims must be >= 0 (0: the full space), got {cfg.search_dims}")
    if cfg.sim_power <= 0 or cfg.qbnorm_beta < 0:
        raise ConfigError("sim_power must be > 0 and qbnorm_beta >= 0")
    if not 0.0 <= cfg.prf_weight < float("inf"):
        raise ConfigError(f"prf_weight must be >= 0 (0 = no feedback), got {cfg.prf_weight}")
    for key in ("artist_weight", "genre_weight"):
        if not 0.0 <= getattr(cfg, key) < float("inf"):
            raise ConfigError(f"{key} must be >= 0 (0 = no metadata match), got "
                              f"{getattr(cfg, key)}")
    if not 0.0 < cfg.match_power < float("inf"):
        raise ConfigError(f"match_power must be > 0, got {cfg.match_power}")


def _fresh_run(run_dir: Path, meta: dict[str, Any], run: Run | None = None) -> Run | None:
    """The run beside text/ (`run` when already loaded), which must be the one the text model
    was trained on; None when the run's vectors are not there."""
    if run is None:
        if not (run_dir / "vectors.npy").exists():
            return None
        from dynplayer.run import load_run

        run = load_run(run_dir)
    if "vectors_hash" in meta and stored_vectors_hash(run) != meta["vectors_hash"]:
        raise ArtifactError(f"{run_dir}: the text model was trained on other track vectors "
                            "(the run was retrained); rerun `dynplayer train-text`")
    return run


def load_searcher(run_dir: Path, **overrides: Any) -> TextSearcher:
    return TextSearcher.load(run_dir, **overrides)


__all__ = ["MAX_QUERY_CHARS", "TextSearcher", "aggregate_scores", "check_query",
           "compose_playlist_vectors", "feedback_scores", "load_searcher",
           "playlist_track_means", "top_rows"]
