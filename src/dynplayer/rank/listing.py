"""Dynplayer's answers under the field's protocol (`eval.field`): 500 tracks per case from the
embedding, the two-stage ranker or, for a case with only a name, the text model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dynplayer.data.corpus import Corpus
from dynplayer.eval.field import N_RECS, FieldCases
from dynplayer.eval.field_run import Lister, dense_lister
from dynplayer.eval.protocol import embedding_scorer
from dynplayer.rank.field import case_queries
from dynplayer.rank.stage import TwoStage, has_ranker, load_stage
from dynplayer.run import Run


def _merge(first: np.ndarray, then: np.ndarray, k: int) -> np.ndarray:
    """`first`, then the entries of `then` not in it, cut to k, padded with -1."""
    both = np.concatenate([first[first >= 0], then[then >= 0]])
    _, idx = np.unique(both, return_index=True)
    out = np.full(k, -1, dtype=np.int64)
    keep = both[np.sort(idx)][:k]
    out[:keep.shape[0]] = keep
    return out


def text_lister(run_dir: Path, corpus: Corpus, fallback: Lister, k: int = N_RECS) -> Lister:
    """A case's name through the text model (`dynplayer search` with k = 500), continued by
    `fallback` where it finds fewer; cases without a name get `fallback`. Without a text
    model, `fallback` alone."""
    if not (Path(run_dir) / "text").is_dir():
        return fallback
    from dynplayer.errors import QueryError
    from dynplayer.text.search import TextSearcher

    searcher = TextSearcher.load(Path(run_dir))
    index = {t: i for i, t in enumerate(corpus.track_ids)}

    def lister(cases: FieldCases) -> np.ndarray:
        out = fallback(cases)
        for i in range(cases.n):
            name = cases.names[i]
            if not name:
                continue
            try:
                hits = searcher.search(name, k=k).tracks
            except QueryError:
                continue
            seeds = set(cases.seeds(i).tolist())
            found = np.array([index[h.track_id] for h in hits if h.track_id in index
                              and index[h.track_id] not in seeds], dtype=np.int64)
            out[i] = _merge(found, out[i], k)
        return out

    return lister


def embedding_lister(run: Run, corpus: Corpus, vocab: np.ndarray, seedless: Lister,
                     k: int = N_RECS) -> Lister:
    """Cosine to the normalised mean of the known seeds' vectors."""
    return dense_lister(embedding_scorer(run.vectors), vocab, corpus.n_tracks, seedless, k=k)


def two_stage_lister(stage: TwoStage, vocab: np.ndarray, n_tracks: int, seedless: Lister,
                     k: int = N_RECS) -> Lister:
    """The ranker's order over each case's candidates, continued by the embedding's order
    (as `recommend` serves it); seedless cases (no seed the vocabulary holds) get `seedless`."""
    col_of = np.full(n_tracks, -1, dtype=np.int64)
    col_of[vocab] = np.arange(vocab.shape[0])
    emb = embedding_lister_over(stage.sources.vectors, vocab, n_tracks, k)

    def lister(cases: FieldCases) -> np.ndarray:
        out = np.full((cases.n, k), -1, dtype=np.int64)
        keep, q, _, _ = case_queries(cases, col_of, vocab.shape[0])
        rest = np.setdiff1d(np.arange(cases.n), keep)
        if rest.size:
            out[rest] = seedless(cases.subset(rest))
        if keep.size:
            ranked = stage.rank(q, k)
            more = emb(cases.subset(keep))
            for j, i in enumerate(keep):
                out[i] = _merge(vocab[ranked[j][0]], more[j], k)
        return out

    return lister


def embedding_lister_over(vectors: np.ndarray, vocab: np.ndarray, n_tracks: int,
                          k: int) -> Lister:
    def nothing(cases: FieldCases) -> np.ndarray:
        return np.full((cases.n, k), -1, dtype=np.int64)

    return dense_lister(embedding_scorer(vectors), vocab, n_tracks, nothing, k=k)


def dynplayer_methods(run_dir: Path) -> dict[str, Any]:
    """The field table's Dynplayer rows for a run: the embedding, and the two-stage ranker
    when RUN_DIR/ranker/ exists; a case with only a name goes to the text model (RUN_DIR/text/)
    or, without one, to the title peer."""

    def emb(run: Run, corpus: Corpus, vocab: np.ndarray, title: Lister) -> Lister:
        return embedding_lister(run, corpus, vocab, text_lister(run.path, corpus, title))

    methods: dict[str, Any] = {"dynplayer": emb}
    if has_ranker(run_dir):
        def two(run: Run, corpus: Corpus, vocab: np.ndarray, title: Lister) -> Lister:
            stage = load_stage(run, corpus, vocab)
            return two_stage_lister(stage, vocab, corpus.n_tracks,
                                    text_lister(run.path, corpus, title))

        methods["dynplayer two-stage"] = two
    return methods
