"""`evaluate`'s whole-catalogue table: Dynplayer and the peers under the field's protocol
(`eval.field`), every peer over every track of the training playlists, tuned on the validation
split's cases of the same protocol.

A peer that needs seeds answers a seedless case (title only) with the title peer (BM25 over the
training playlists' names), the strongest seedless answer among the peers, so the comparison
is with the best a classical system does in every category.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dynplayer.data.corpus import TRAIN, VAL, Corpus
from dynplayer.eval.budget import ease_fits
from dynplayer.eval.field import PROTOCOLS, FieldCases, field_cases
from dynplayer.eval.field_run import (
    Lister,
    artist_codes,
    catalogue,
    dense_lister,
    evaluate_lister,
    popularity_lister,
    title_lister,
)
from dynplayer.eval.knn import SparseItemKNN
from dynplayer.eval.peers import Peer, TrainData, make_peer

FIELD_PEERS = ("popularity", "title", "itemknn", "ease", "als", "item2vec")
# Grids over the whole catalogue: smaller than the seed protocol's (a fit there takes seconds,
# here minutes); the points were the best of wider sweeps on the MPD validation split.
FIELD_GRIDS: dict[str, list[dict[str, Any]]] = {
    "itemknn": [{"neighbours": None, "shrinkage": 0.0}, {"neighbours": 200, "shrinkage": 10.0}],
    "als": [{"factors": f, "alpha": a, "regularization": 0.05} for f in (128, 256)
            for a in (10.0, 20.0)],
    "item2vec": [{"scoring": "cosine"}, {"scoring": "in_out"}],
    "ease": [{"lam": 200.0}],
}
# a Dynplayer method: (run, corpus, vocab, seedless lister) -> lister
MethodFactory = Callable[[Any, Corpus, np.ndarray, Lister], Lister]


@dataclass
class FieldOptions:
    protocol: str = "challenge"  # or "first-n" (Deezer APC-RTA's)
    peers: list[str] = field(default_factory=lambda: list(FIELD_PEERS))
    grids: dict[str, list[dict[str, Any]]] | None = None
    max_playlists: int = 10_000
    memory_bytes: int = 0
    threads: int = 2
    seed: int | None = None  # the case draw; None: the corpus' own seed


def field_options(protocol: str, categories: str, peers: str, threads: int
                  ) -> FieldOptions | None:
    """`evaluate`'s field flags as options (None: `--protocol seed`); one-line errors."""
    from dynplayer.errors import ConfigError

    if protocol not in ("both", "seed", "field"):
        raise ConfigError(f"--protocol must be both, seed or field, got {protocol!r}")
    if categories not in PROTOCOLS:
        raise ConfigError(f"--categories must be one of {', '.join(PROTOCOLS)}, "
                          f"got {categories!r}")
    spec = peers.strip().lower()
    names = (list(FIELD_PEERS) if spec == "all" else [] if spec in ("", "none")
             else [p.strip() for p in spec.split(",") if p.strip()])
    unknown = [p for p in names if p not in FIELD_PEERS]
    if unknown:
        raise ConfigError(f"--field-peers: unknown peer(s) {', '.join(unknown)} (known: all, "
                          f"none, {', '.join(FIELD_PEERS)})")
    if protocol == "seed":
        return None
    return FieldOptions(protocol=categories, peers=names, threads=threads)


def headline(m: dict[str, Any]) -> float:
    return float(m["r_precision"] + m["ndcg"])


def _peer(name: str, threads: int, point: dict[str, Any]) -> Peer:
    if name == "itemknn":
        return SparseItemKNN(**point)
    return make_peer(name, threads=threads, **point)


def evaluate_field(run: Any, corpus: Corpus, vocab: np.ndarray, split: int,
                   opts: FieldOptions, methods: dict[str, MethodFactory],
                   say: Callable[[str], None]) -> dict[str, Any]:
    """The field table of one split: Dynplayer's `methods` and the peers, overall and by
    category, with coverage and the share of recommendations (and hits) outside the head."""
    t_all = time.perf_counter()
    cats = PROTOCOLS[opts.protocol]
    if opts.seed is None:
        opts.seed = int(corpus.manifest.get("config", {}).get("seed", 0))
    cases = field_cases(corpus, split, cats, seed=opts.seed, max_playlists=opts.max_playlists)
    artist = artist_codes(corpus)
    head = np.zeros(corpus.n_tracks, dtype=bool)
    head[corpus.head_vocab()] = True
    cat = catalogue(corpus)
    say(f"field protocol ({opts.protocol}): {cases.n:,} playlists of the "
        f"{'test' if split != VAL else 'validation'} split over {cat.shape[0]:,} catalogue "
        f"tracks; {cases.unqualified:,} too short for any category"
        + (f"; skipped: {', '.join(cases.skipped)}" if cases.skipped else ""))
    pop = popularity_lister(corpus, cat)
    title = title_lister(corpus, pop)

    def score(lister: Lister, on: FieldCases) -> dict[str, Any]:
        return evaluate_lister(lister, on, artist, head, cat.shape[0])

    rows: dict[str, dict[str, Any]] = {}
    info: dict[str, dict[str, Any]] = {}
    for name, factory in methods.items():
        t = time.perf_counter()
        rows[name] = score(factory(run, corpus, vocab, title), cases)
        info[name] = {"seconds": round(time.perf_counter() - t, 1)}
        say(f"{name}: {_line(rows[name])}")
    if "popularity" in opts.peers:
        rows["popularity"] = score(pop, cases)
    if "title" in opts.peers:
        rows["title (bm25)"] = score(title, cases)
    learned = [p for p in opts.peers if p not in ("popularity", "title")]
    if learned:
        _learned_peers(corpus, cat, cases, learned, opts, title, score, rows, info, say)
    best_peer = {k: max((r[k] for n, r in rows.items() if not n.startswith("dynplayer")),
                        default=0.0) for k in ("r_precision", "ndcg")}
    return {"protocol": opts.protocol, "n_playlists": cases.n, "n_catalogue": int(cat.shape[0]),
            "unqualified": cases.unqualified, "skipped": cases.skipped,
            "categories": [c.name for c in cats], "methods": rows, "peers": info,
            "best_peer": best_peer, "seconds": round(time.perf_counter() - t_all, 1)}


def _learned_peers(corpus: Corpus, cat: np.ndarray, cases: FieldCases, names: list[str],
                   opts: FieldOptions, title: Lister,
                   score: Callable[[Lister, FieldCases], dict[str, Any]],
                   rows: dict[str, dict[str, Any]], info: dict[str, dict[str, Any]],
                   say: Callable[[str], None]) -> None:
    train = corpus.playlists_in(TRAIN)
    matrix = corpus.interaction_matrix(train, vocab=cat)
    data = TrainData(matrix)
    if "item2vec" in names:
        data.seq_indptr, data.seq_cols = corpus.sequences(train, vocab=cat)
    val = field_cases(corpus, VAL, PROTOCOLS[opts.protocol], seed=opts.seed or 0,
                      max_playlists=opts.max_playlists)
    grids = opts.grids if opts.grids is not None else FIELD_GRIDS
    for name in names:
        t = time.perf_counter()
        if name == "ease":
            fits, why = ease_fits(matrix.shape[0], matrix.shape[1], opts.memory_bytes)
            if not fits:
                say(why)
                info[name] = {"skipped": why}
                continue
        best: tuple[float, Peer, dict[str, Any]] | None = None
        tried = []
        for point in grids.get(name, [{}]):
            peer = _peer(name, opts.threads, point).fit(data)
            m = score(dense_lister(peer.score, cat, corpus.n_tracks, title), val)
            tried.append({**point, "val_r_precision": round(m["r_precision"], 4),
                          "val_ndcg": round(m["ndcg"], 4)})
            say(f"  {name} {point}: validation {_line(m)}")
            if best is None or headline(m) > best[0]:
                best = (headline(m), peer, point)
        assert best is not None
        rows[name] = score(dense_lister(best[1].score, cat, corpus.n_tracks, title), cases)
        info[name] = {"params": best[2], "validation": tried,
                      "seconds": round(time.perf_counter() - t, 1)}
        say(f"{name} {best[2]}: {_line(rows[name])}")


def _line(m: dict[str, Any]) -> str:
    return (f"R-precision {m['r_precision']:.4f} NDCG {m['ndcg']:.4f} clicks {m['clicks']:.2f} "
            f"Recall@500 {m['recall@500']:.4f} coverage {m['coverage']:.3f}")


def field_verdict(result: dict[str, Any], method: str, min_category: int = 50
                  ) -> dict[str, Any]:
    """`method`'s ratios to the best peer overall and in each category with at least
    `min_category` playlists (the best peer is taken per figure and per category)."""
    rows = result["methods"]
    peers = {n: r for n, r in rows.items() if not n.startswith("dynplayer")}
    me = rows[method]
    out: dict[str, Any] = {"method": method, "overall": {}, "categories": {}}
    for key in ("r_precision", "ndcg"):
        best = max(peers.items(), key=lambda kv: kv[1][key]) if peers else None
        out["overall"][key] = {"ratio": me[key] / best[1][key] if best and best[1][key] else
                               None, "peer": best[0] if best else None}
    for cname, m in me["categories"].items():
        if m["n_playlists"] < min_category:
            continue
        cell = {}
        for key in ("r_precision", "ndcg"):
            vals = {n: r["categories"][cname][key] for n, r in peers.items()
                    if cname in r["categories"]}
            bp = max(vals, key=lambda n: vals[n]) if vals else None
            cell[key] = {"ratio": m[key] / vals[bp] if bp and vals[bp] else None, "peer": bp}
        out["categories"][cname] = cell
    return out
