"""`dynplayer bench diversity`: what an artist cap costs in Recall@10 and gains in distinct
artists in the top 10, for each kind of answer, on a held-out split.

- continue: the split's playlists, visible tracks as seeds (in order), held-out tracks as the
  truth; ranked as the service ranks them (the second stage when RUN_DIR/ranker/ exists).
- similar: the first visible track of each playlist alone, its embedding neighbours; the
  playlist's held-out tracks as the truth.
- text: the playlists' captions (Korean loanwords bridged), the text search; every vocabulary
  track of the playlist as the truth (as `bench text` counts keyword -> tracks).

Each answer ranks a pool of `POOL_FACTOR` x 10 candidates, then `diversity.cap_per_artist`
keeps the first 10 with at most n per artist (filling from the rest when too few artists). The
default per kind (`diversity.DEFAULTS`) is the tightest cap whose validation Recall@10 stays
within `TOLERANCE` (relative) of no cap.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from dynplayer.diversity import KINDS, POOL_FACTOR, TOLERANCE, artist_codes, cap_per_artist

K = 10
CAPS = (0, 1, 2, 3, 4, 5)


def cap_metrics(pools: list[np.ndarray], codes: np.ndarray, truth: sp.csr_matrix,
                caps: tuple[int, ...] = CAPS, k: int = K) -> dict[int, dict[str, float]]:
    """Per cap: mean Recall@k (hits / min(k, |truth|)) and mean distinct artists in the top k
    of each ranked pool (item indices into `codes` and the columns of `truth`)."""
    truth = truth.tocsr()
    out: dict[int, dict[str, float]] = {}
    for n in caps:
        recall, distinct = [], []
        for i, pool in enumerate(pools):
            rel = truth.indices[truth.indptr[i]:truth.indptr[i + 1]]
            if rel.size == 0 or pool.size == 0:
                continue
            top = pool[cap_per_artist(codes[pool], n, k)]
            recall.append(np.isin(top, rel).sum() / min(k, rel.size))
            distinct.append(np.unique(codes[top]).size)
        out[n] = {"recall@10": round(float(np.mean(recall)), 4),
                  "distinct_artists@10": round(float(np.mean(distinct)), 3),
                  "queries": len(recall)}
    return out


def choose_default(rows: dict[int, dict[str, float]], tolerance: float = TOLERANCE) -> int:
    """The tightest cap (smallest n >= 1) whose Recall@10 is at least (1 - tolerance) x that
    of no cap (n = 0); 0 when none is."""
    base = rows[0]["recall@10"]
    ok = [n for n in sorted(rows) if n > 0 and rows[n]["recall@10"] >= (1 - tolerance) * base]
    return ok[0] if ok else 0


def _continuation_pools(run_dir: Path, split: str, pool: int,
                        ) -> tuple[list[np.ndarray], list[np.ndarray], sp.csr_matrix,
                                   np.ndarray, str]:
    from dynplayer.data.corpus import TEST, VAL, load_corpus
    from dynplayer.eval.protocol import corpus_eval_set
    from dynplayer.eval.runner import run_vocab
    from dynplayer.rank.recommend import Recommender
    from dynplayer.rank.stage import queries_from_order, queries_from_visible

    rec = Recommender.load(run_dir)
    corpus = load_corpus(rec.run.corpus_dir)
    vocab = run_vocab(rec.run, corpus)
    ev = corpus_eval_set(corpus, VAL if split == "val" else TEST, vocab=vocab)
    q = queries_from_order(ev.order) if ev.order is not None else \
        queries_from_visible(ev.visible)
    cont = [cols for cols, _ in rec.recommend(q, pool)]
    # similar: the first visible track alone, by the embedding (as the service answers)
    v = rec.run.vectors
    first = q.seed_cols[q.seed_indptr[:-1]]
    scores = v[first] @ v.T
    scores[np.arange(first.shape[0]), first] = -np.inf
    part = np.argpartition(-scores, pool - 1, axis=1)[:, :pool]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    similar = list(np.take_along_axis(part, order, axis=1))
    codes = artist_codes([corpus.artists[t] for t in vocab])
    return cont, similar, ev.heldout, codes, rec.method


def _text_pools(run_dir: Path, split: str, pool: int
                ) -> tuple[list[np.ndarray], sp.csr_matrix, np.ndarray] | None:
    if not (Path(run_dir) / "text").is_dir():
        return None
    from dynplayer.text.evaluate import prepare_eval
    from dynplayer.text.search import TextSearcher

    searcher = TextSearcher.load(run_dir)
    ev = prepare_eval(searcher, split)
    col = {t: i for i, t in enumerate(searcher.track_ids)}
    pools = [np.array([col[t.track_id] for t in searcher.search(q, pool, bridge=False).tracks],
                      dtype=np.int64) for q in ev.queries]  # ev.queries are bridged already
    return pools, ev.relevant, artist_codes(searcher.track_artists)


def run_bench(run_dir: Path, split: str = "val", caps: tuple[int, ...] = CAPS,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """The table per kind on `split`, and the default the rule picks from it."""
    from dynplayer.errors import ConfigError

    if split not in ("val", "test"):
        raise ConfigError(f"--split must be val or test, got {split!r}")
    if 0 not in caps:
        caps = (0, *caps)
    pool = POOL_FACTOR * K
    log(f"continuation and similar tracks on the {split} split ...")
    cont, similar, heldout, codes, method = _continuation_pools(run_dir, split, pool)
    out: dict[str, Any] = {"split": split, "pool": pool, "k": K, "tolerance": TOLERANCE,
                           "continue_method": method}
    out["continue"] = cap_metrics(cont, codes, heldout, caps)
    out["similar"] = cap_metrics(similar, codes, heldout, caps)
    text = _text_pools(run_dir, split, pool)
    if text is not None:
        log(f"text queries on the {split} split ...")
        out["text"] = cap_metrics(text[0], text[2], text[1], caps)
    out["chosen"] = {kind: choose_default(out[kind]) for kind in KINDS if kind in out}
    return out


def format_table(result: dict[str, Any]) -> str:
    caps = sorted(result["continue"], key=int)  # int keys, or str ones read back from JSON
    lines = [f"Artist cap, {result['split']} split: Recall@10 / distinct artists in the top 10 "
             f"(pool {result['pool']} candidates; continuation: {result['continue_method']})",
             "", "| answer | " + " | ".join("no cap" if int(n) == 0 else f"<= {n} per artist"
                                            for n in caps) + " | chosen |",
             "|---" * (len(caps) + 2) + "|"]
    for kind in KINDS:
        if kind not in result:
            continue
        rows = result[kind]
        cells = [f"{rows[n]['recall@10']:.4f} / {rows[n]['distinct_artists@10']:.2f}"
                 for n in caps]
        chosen = result["chosen"][kind]
        lines.append(f"| {kind} | " + " | ".join(cells) + f" | {chosen or 'no cap'} |")
    lines.append(f"\nchosen: the tightest cap with Recall@10 >= {1 - result['tolerance']:.2f} x "
                 "no cap (validation decides the defaults)")
    return "\n".join(lines)


__all__ = ["CAPS", "cap_metrics", "choose_default", "format_table", "run_bench"]
