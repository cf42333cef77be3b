"""The two-stage recommender: candidates (`candidates.retrieve`) re-ordered by a fitted `Ranker`,
and RUN_DIR/ranker/ (what `dynplayer train-ranker` writes and `recommend` / `evaluate` read).

RUN_DIR/ranker/:
  model.txt | model.json   the LightGBM / XGBoost model in the library's own format
  manifest.json            backend, parameters, feature list, candidate sizes, the validation
                           figures beside the embedding ranking, the corpus hash it came from
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from dynplayer.data.corpus import TEST, TRAIN, VAL, Corpus, corpus_content_hash, load_corpus
from dynplayer.errors import ArtifactError
from dynplayer.rank import features as F
from dynplayer.rank.candidates import (
    N_COOC,
    N_EASE,
    N_EMBEDDING,
    N_TITLE,
    Queries,
    Sources,
    build_sources,
    retrieve,
    seed_mean,
)
from dynplayer.rank.model import Ranker, RankerParams
from dynplayer.run import Run

RANKER_DIR = "ranker"
MAX_EASE_ITEMS = 30_000  # a dense V x V float32 matrix: 3.6 GB at this size
FORMAT_VERSION = 1


@dataclass
class StageConfig:
    n_embedding: int = N_EMBEDDING
    n_cooc: int = N_COOC
    n_ease: int = N_EASE
    window: int = 10
    batch_size: int = 256
    # EASE weights as a retriever and a feature (lambda chosen for the EASE peer on validation);
    # None = without (the V x V matrix does not fit: see MAX_EASE_ITEMS)
    ease_lam: float | None = 100.0
    ease_items: int = 20_000  # EASE over the most popular tracks (all, in a small vocabulary)
    n_title: int = N_TITLE  # candidates from the text model's answer to the playlist's name
    # a cascade: the first `cascade_rounds` boosting rounds score every candidate, the rest only
    # each playlist's best `cascade_keep` (or k, if more); 0 = every round on every candidate.
    # On MPD validation it changed no Recall@10 / NDCG@10 digit and saved 0.5-0.6 ms a request
    # (docs/benchmarks.md)
    cascade_rounds: int = 30
    cascade_keep: int = 100
    # the embedding retriever's mean weights each seed by recency: halved every this many
    # seeds before the last (0: every seed alike, as a ranker saved without it). Chosen on the
    # MPD slices' validation among 15 / 30 / 60 (docs/experiments.md)
    recent_half_life: float = 30.0
    # an answer longer than `n_embedding` also draws a pool grown in proportion (embedding and
    # co-occurrence picks x k / n_embedding): the base pool's candidates first, as a short
    # answer ranks them, then the grown pool's others in the ranker's order, so the list's end
    # is ranked instead of left to the embedding's order. Shorter answers (the API's 20, a
    # capped 60) draw the base pool alone; the ranker learns on it (docs/experiments.md)
    grow_pool: bool = True

    def pool(self, k: int | None = None) -> tuple[int, int]:
        """(embedding, co-occurrence) candidates for an answer of `k` (None: the base pool)."""
        if not self.grow_pool or k is None or k <= self.n_embedding or self.n_embedding < 1:
            return self.n_embedding, self.n_cooc
        return k, -(-self.n_cooc * k // self.n_embedding)


def source_playlists(corpus: Corpus, run: Run) -> np.ndarray:
    """The playlists the run learned from: training, plus test in a `--full` run."""
    if run.config.get("full"):
        return np.flatnonzero(corpus.split != VAL).astype(np.int64)  # type: ignore[operator]
    return corpus.playlists_in(TRAIN)


def sources_for(run: Run, corpus: Corpus, vocab: np.ndarray, cfg: StageConfig,
                vectors: np.ndarray | None = None,
                playlists: np.ndarray | None = None) -> Sources:
    """Sources from `playlists` (default: those the run learned from) and `vectors` (default:
    the run's)."""
    pl = source_playlists(corpus, run) if playlists is None else playlists
    ip, cols = corpus.sequences(pl, vocab=vocab)
    return build_sources(run.vectors if vectors is None else vectors, ip, cols,
                         [corpus.artists[t] for t in vocab], [corpus.albums[t] for t in vocab],
                         window=cfg.window, ease_lam=cfg.ease_lam,
                         ease_items=cfg.ease_items)


def queries_from_order(order: sp.csr_matrix) -> Queries:
    """Seeds in playlist order from an `EvalSet.order`-style CSR (data = position)."""
    order = order.tocsr()
    rows = np.repeat(np.arange(order.shape[0]), np.diff(order.indptr))
    srt = np.lexsort((order.data, rows))
    return Queries(order.indptr.astype(np.int64), order.indices[srt].astype(np.int64))


def queries_from_visible(visible: sp.csr_matrix) -> Queries:
    """Seeds without order (column order stands in for playlist order)."""
    v = visible.tocsr()
    v.sort_indices()
    return Queries(v.indptr.astype(np.int64), v.indices.astype(np.int64))


def cascade_predict(ranker: Ranker, rows: np.ndarray, x: np.ndarray, rounds: int,
                    keep: int) -> np.ndarray:
    """Scores of candidates `x` (playlist `rows`): the first `rounds` boosting rounds for all,
    the rest only for each playlist's best `keep` by those, which score above the others (the
    others keep their first rounds' order). `rounds` 0 or past the model: every round."""
    if rounds <= 0 or rounds >= ranker.n_trees or x.shape[0] == 0:
        return ranker.predict(x)
    part = ranker.predict(x, 0, rounds)
    top = F.group_ranks(rows, part) < keep
    if top.all():
        return ranker.predict(x)
    full = part[top] + ranker.predict(x[top], rounds)
    out = part - float(part.max()) + float(full.min()) - 1.0
    out[top] = full
    return out


class TwoStage:
    """Candidates, features, ranker: `rank(queries, k)` and a dense scorer for the protocol."""

    ordered = True  # evaluate_scorer passes the visible tracks' positions

    def __init__(self, sources: Sources, ranker: Ranker, cfg: StageConfig,
                 manifest: dict[str, Any] | None = None, title: Any = None) -> None:
        self.sources = sources
        self.ranker = ranker
        self.cfg = cfg
        self.manifest = manifest or {}
        self.title = title  # rank.title.TitleEvidence: names as evidence (None: ignored)

    def with_names(self, q: Queries, names: list[str | None] | None) -> Queries:
        """`q` with the text model's scores for each playlist's name (when the ranker reads
        them and some name is given)."""
        if (self.title is None or not names or not any(names)
                or "title_score" not in self.ranker.features):
            return q
        return Queries(q.seed_indptr, q.seed_cols, self.title.dense(list(names)))

    def candidate_scores(self, q: Queries, keep: int | None = None,
                         allowed: np.ndarray | None = None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(rows, cols, ranker scores, embedding cosines) of every candidate of `q`. With the
        cascade, each playlist's best `keep` (default `cfg.cascade_keep`) candidates by the
        first rounds get every round and score above the rest. An answer of `keep` tracks
        longer than the base pool also draws a grown one (`StageConfig.pool`): its candidates
        the base pool lacks, scored among the grown pool, rank below the base pool's, which
        keep their scores. `allowed` (bool, V): candidates only among these tracks
        (`retrieve`)."""
        out_r, out_c, out_s, out_e = [], [], [], []
        base = (self.cfg.n_embedding, self.cfg.n_cooc)
        grown = self.cfg.pool(keep)
        v = self.sources.n_items
        for start in range(0, q.n, self.cfg.batch_size):
            sub = q.slice(start, min(q.n, start + self.cfg.batch_size))
            r, c, s, e = self._scored(sub, base, keep, allowed)
            if grown != base:
                r2, c2, s2, e2 = self._scored(sub, grown, keep, allowed)
                extra = ~np.isin(r2 * v + c2, r * v + c)
                if extra.any():
                    low = float(s.min()) - float(s2[extra].max()) - 1.0 if s.size else 0.0
                    r, c = np.r_[r, r2[extra]], np.r_[c, c2[extra]]
                    s, e = np.r_[s, s2[extra] + low], np.r_[e, e2[extra]]
            out_r.append(r + start)
            out_c.append(c)
            out_s.append(s)
            out_e.append(e)
        if not out_r:
            z = np.zeros(0, np.int64)
            return z, z, np.zeros(0, np.float32), np.zeros(0, np.float32)
        return (np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_s),
                np.concatenate(out_e))

    def _scored(self, sub: Queries, pool: tuple[int, int], keep: int | None,
                allowed: np.ndarray | None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One batch's candidates from a pool of (embedding, co-occurrence) picks, scored."""
        ret = retrieve(self.sources, sub, pool[0], pool[1], self.cfg.n_ease, self.cfg.n_title,
                       allowed=allowed, half_life=self.cfg.recent_half_life)
        x = F.compute(self.sources, sub, ret, self.ranker.features)
        s = cascade_predict(self.ranker, ret.rows, x, self.cfg.cascade_rounds,
                            max(keep or 0, self.cfg.cascade_keep))
        return ret.rows, ret.cols, s, ret.dense["emb"][ret.rows, ret.cols]

    def rank(self, q: Queries, k: int, names: list[str | None] | None = None,
             allowed: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per playlist: the top-k vocabulary rows, best first, and their ranker scores (ties
        in the embedding's order); `names`: each playlist's name, or None; with `allowed`, only
        among those tracks."""
        rows, cols, scores, emb = self.candidate_scores(self.with_names(q, names), keep=k,
                                                        allowed=allowed)
        order = np.lexsort((-emb, -scores, rows))
        rows, cols, scores = rows[order], cols[order], scores[order]
        bounds = np.searchsorted(rows, np.arange(q.n + 1))
        return [(cols[a:min(b, a + k)], scores[a:min(b, a + k)])
                for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def __call__(self, visible: sp.csr_matrix, order: sp.csr_matrix | None = None
                 ) -> np.ndarray:
        """Dense (n, V) scores: candidates above every non-candidate, which keep their
        embedding order below (so deep cut-offs stay defined)."""
        q = queries_from_order(order) if order is not None else queries_from_visible(visible)
        rows, cols, scores, emb = self.candidate_scores(q)
        mean = seed_mean(self.sources.vectors, q.seed_indptr, q.seed_cols)  # the plain mean
        dense = (mean @ self.sources.vectors.T - 10.0).astype(np.float32)  # in [-11, -9]
        lo = float(scores.min()) if scores.size else 0.0
        # >= 1 > any non-candidate; ties in the embedding's order (cosines 1e-3 apart at most)
        dense[rows, cols] = scores - lo + 1.0 + 1e-4 * emb
        return dense


# ---- persistence -----------------------------------------------------------------------------


def save_ranker(d: Path, ranker: Ranker, cfg: StageConfig, manifest: dict[str, Any]) -> None:
    """Write the model file and manifest.json into `d` (the caller swaps `d` in atomically)."""
    from dynplayer.run import atomic_write_json

    d.mkdir(parents=True, exist_ok=True)
    model_file = ranker.save(d)
    atomic_write_json(d / "manifest.json", {
        **manifest, "format_version": FORMAT_VERSION, "model_file": model_file,
        "features": ranker.features, "params": asdict(ranker.params),
        "best_rounds": ranker.best_rounds, "stage": asdict(cfg)})


def read_manifest(d: Path) -> dict[str, Any]:
    path = d / "manifest.json"
    if not path.exists():
        raise ArtifactError(f"{d}: not a ranker directory (missing manifest.json)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: unreadable ranker manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{path}: not a ranker manifest of format {FORMAT_VERSION}; "
                            "rerun `dynplayer train-ranker`")
    return manifest


def load_stage(run: Run, corpus: Corpus | None = None, vocab: np.ndarray | None = None,
               directory: Path | None = None) -> TwoStage:
    """Read RUN_DIR/ranker/ with the sources `train-ranker` stored beside it (`rank.saved`),
    or, when they are missing or stale, rebuild the sources from the run's corpus (read here
    when `corpus` is not given)."""
    from dynplayer.rank.saved import load_sources, sources_key

    d = directory or run.path / RANKER_DIR
    manifest = read_manifest(d)
    corpus_hash = corpus.manifest.get("content_hash") if corpus is not None else \
        corpus_content_hash(run.corpus_dir)
    if manifest.get("corpus_hash") not in (None, corpus_hash):
        raise ArtifactError(f"{d}: the ranker was trained on another corpus; rerun "
                            "`dynplayer train-ranker`")
    from dynplayer.config import from_dict

    try:
        params = from_dict(RankerParams, manifest["params"])
        # a ranker saved before the recency weighting was trained without it
        cfg = from_dict(StageConfig, {"recent_half_life": 0.0, **manifest["stage"]})
        feats = [str(f) for f in manifest["features"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{d}/manifest.json: incomplete ranker manifest ({exc})") from exc
    if cfg.cascade_rounds < 0 or cfg.cascade_keep < 1:
        raise ArtifactError(f"{d}/manifest.json: stage.cascade_rounds must be >= 0 and "
                            f"cascade_keep >= 1, got {cfg.cascade_rounds} / {cfg.cascade_keep}")
    hl = cfg.recent_half_life
    if not (isinstance(hl, int | float) and 0 <= hl < float("inf")):
        raise ArtifactError(f"{d}/manifest.json: stage.recent_half_life must be a number >= 0, "
                            f"got {hl!r}")
    if not isinstance(cfg.grow_pool, bool):
        raise ArtifactError(f"{d}/manifest.json: stage.grow_pool must be true or false, "
                            f"got {cfg.grow_pool!r}")
    unknown = sorted(set(feats) - set(F.ALL_FEATURES))
    if unknown:
        raise ArtifactError(f"{d}: unknown features {', '.join(unknown)}")
    ranker = Ranker.load(d, params, feats, manifest.get("best_rounds"))
    sources = load_sources(d, run, sources_key(run, corpus_hash, cfg.window, cfg.ease_lam,
                                               cfg.ease_items))
    if sources is None:
        if corpus is None:
            corpus = load_corpus(run.corpus_dir)
        if vocab is None:
            from dynplayer.eval.runner import run_vocab

            vocab = run_vocab(run, corpus)
        sources = sources_for(run, corpus, vocab, cfg)
    title = None
    if "title_score" in feats:
        from dynplayer.rank.title import TitleEvidence

        # without the text model the name features are missing (NaN), as for a nameless list
        title = TitleEvidence.load(run.path, run.ids)
    return TwoStage(sources, ranker, cfg, manifest, title)


def has_ranker(run_dir: Path) -> bool:
    return (Path(run_dir) / RANKER_DIR / "manifest.json").exists()


__all__ = ["RANKER_DIR", "StageConfig", "TEST", "TwoStage", "cascade_predict", "has_ranker",
           "load_stage", "queries_from_order", "queries_from_visible", "save_ranker", "sources_for"]
