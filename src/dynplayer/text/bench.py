"""`dynplayer bench text`: the text-search tables of docs/benchmarks.md, as markdown.

Without --tune: keyword -> playlist, keyword -> tracks (every method), hubness and one-query
latency on one split. With --tune (validation only): the grid the search defaults were chosen
from.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from dynplayer.errors import ConfigError, DynplayerError
from dynplayer.text.evaluate import (
    TextEval,
    playlist_retrieval,
    prepare_eval,
    ranking_metrics,
    retrieval_hubness,
    track_scores,
)
from dynplayer.text.search import TextSearcher

METRIC_KEYS = ("recall@10", "ndcg@10", "recall@50", "ndcg@50")


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _fmt(x: float) -> str:
    return f"{x:.4f}"


def _header(searcher: TextSearcher, ev: TextEval, split: str) -> list[str]:
    run_cfg = json.loads((searcher.path.parent / "config.json").read_text())
    meta = json.loads((searcher.path / "config.json").read_text())
    track_model = run_cfg.get("model") or run_cfg.get("objective") or "dynplayer train"
    m = meta["metrics"]
    c = searcher.cfg
    return [
        f"run `{searcher.path.parent}` (track model: {track_model}; corpus "
        f"`{meta['corpus_dir']}`), text encoder `{c.encoder}`; split `{split}`: {ev.n:,} "
        f"held-out playlists with a caption and a vocabulary track; {len(searcher.playlist_pids):,}"
        f" searchable training playlists; vocabulary {len(searcher.track_ids):,} tracks.",
        f"text model: {m['n_train_playlists']:,} training captions, trained in "
        f"{m['train_seconds']:.1f}s ({m['total_seconds']:.1f}s with loading, encoding and "
        f"writing); search defaults: retrieval `{c.retrieval}` (caption weight "
        f"{c.caption_weight}), top {c.top_playlists} playlists, similarity power {c.sim_power}, "
        f"QB-Norm beta {c.qbnorm_beta}, PRF weight {c.prf_weight}. Machine: {platform.machine()}, "
        f"{_cpu_count()} CPU cores.",
        "",
    ]


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """JSON lines `{"query": str, "reference": str}` (extra fields ignored); a bad line is a
    one-line error naming FILE:LINE."""
    from dynplayer.data.json_errors import JSON_ERRORS, json_problem
    from dynplayer.text.search import check_query

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the pairs file ({exc})") from exc
    out: list[tuple[str, str]] = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except JSON_ERRORS as exc:
            raise ConfigError(f"{path}:{no}: {json_problem(exc)}") from exc
        if not isinstance(obj, dict) or not all(isinstance(obj.get(k), str)
                                                for k in ("query", "reference")):
            raise ConfigError(f"{path}:{no}: expected {{\"query\": text, \"reference\": text}}")
        try:
            out.append((check_query(obj["query"]), check_query(obj["reference"])))
        except DynplayerError as exc:
            raise ConfigError(f"{path}:{no}: {exc}") from exc
    if not out:
        raise ConfigError(f"{path}: no pairs")
    return out


def pairs_table(searcher: TextSearcher, pairs: list[tuple[str, str]], k: int = 50) -> list[str]:
    """A probe without labels: how much of the reference wording's top-k tracks the query's
    top-k shares (e.g. a Korean query beside its English wording on an English-trained model),
    with the loanword bridge (`text.loanwords`, as search runs) and without it."""
    rows, overlaps, raw_overlaps, first_ms = [], [], [], []
    t0 = time.perf_counter()
    _ = searcher.loanword_bridge  # built once per searcher (serving: at start-up)
    build_s = time.perf_counter() - t0
    for query, reference in pairs:
        ref = {t.track_id for t in searcher.search(reference, k=k).tracks}
        t0 = time.perf_counter()
        searched = searcher.bridged(query)  # first sight of its words: the bridge's full cost
        first_ms.append((time.perf_counter() - t0) * 1000)
        got = {t.track_id for t in searcher.search(query, k=k).tracks}
        raw = {t.track_id for t in searcher.search(query, k=k, bridge=False).tracks}
        overlaps.append(len(got & ref) / max(len(ref), 1))
        raw_overlaps.append(len(raw & ref) / max(len(ref), 1))
        rows.append(_row([query, searched or "(as typed)", reference, f"{overlaps[-1]:.2f}",
                          f"{raw_overlaps[-1]:.2f}"]))
    return ([f"Pairs ({len(pairs)}): the share of the reference's top {k} tracks in the query's "
             f"top {k}; mean **{float(np.mean(overlaps)):.3f}** as searched, "
             f"{float(np.mean(raw_overlaps)):.3f} without the loanword bridge; the bridge "
             f"took {float(np.median(first_ms)):.1f} ms (median, max "
             f"{float(np.max(first_ms)):.1f}) a query on first sight of its words, after "
             f"{build_s:.2f} s to build it",
             "", _row(["query", "searched as", "reference", "overlap", "without bridge"]),
             _row(["---"] * 5), *rows, ""])


def run_bench(run_dir: Path, split: str = "test", latency_queries: int = 500,
              tune: bool = False, pairs: Path | None = None) -> str:
    searcher = TextSearcher.load(run_dir)
    if pairs is not None:  # the probe alone: it needs no split
        return "\n".join(pairs_table(searcher, read_pairs(pairs)))
    ev = prepare_eval(searcher, split)
    if tune:
        if split != "val":
            raise ConfigError("--tune runs on the validation split only (use --split val)")
        return "\n".join(_header(searcher, ev, split) + tune_grid(ev))
    lines = _header(searcher, ev, split)
    lines += _playlist_table(ev)
    lines += _track_table(ev)
    lines += dims_table(ev)
    lines += _hubness_table(ev)
    lines += _latency(searcher, ev, latency_queries)
    return "\n".join(lines)


def _playlist_table(ev: TextEval) -> list[str]:
    res = playlist_retrieval(ev)
    lines = ["Keyword -> playlist (query: a held-out playlist's caption; candidates: the held-out "
             "playlists of the split, by their tracks only; relevant: its own playlist)", "",
             _row(["method", "Recall@10", "Recall@20", "candidate pool"]),
             _row(["---"] * 4)]
    for name, r in res.items():
        lines.append(_row([name, _fmt(r["recall@10"]), _fmt(r["recall@20"]), f"{r['pool']:,}"]))
    return lines + [""]


def _track_table(ev: TextEval) -> list[str]:
    c = ev.searcher.cfg
    tuned = {"top_playlists": c.top_playlists, "sim_power": c.sim_power}
    ref = {"top_playlists": 50, "sim_power": 1.0}
    rows: list[tuple[str, str, dict[str, float]]] = []

    def add(name: str, peer: bool | str, method: str, **kw: Any) -> None:
        kw.setdefault("caption_weight", c.caption_weight)
        kind = "yes" if peer is True else (peer or "")
        on = kw.pop("on", ev)
        rows.append((name, kind, ranking_metrics(track_scores(on, method, **kw), ev.relevant)))

    add("popularity", True, "popularity")
    add("BM25 -> top-50 playlists, occurrence x similarity", True, "bm25", **ref)
    add("zero-shot caption cosine -> top-50 playlists", True, "caption", **ref)
    add("direct text -> track cosine (joint space)", True, "direct")
    pfx = f"-> top-{c.top_playlists}, similarity^{c.sim_power:g}"
    add(f"BM25 {pfx} (default aggregation)", True, "bm25", **tuned)
    add(f"zero-shot caption {pfx} (default aggregation)", True, "caption", **tuned)
    prf = c.prf_weight if c.prf_weight > 0 else 5.0
    ablation = "ablation: peer + our PRF"
    add(f"BM25 {pfx}, PRF weight {prf:g}", ablation, "bm25", **tuned, prf_weight=prf)
    add(f"zero-shot caption {pfx}, PRF weight {prf:g}", ablation, "caption", **tuned,
        prf_weight=prf)
    add("joint space -> top-50 playlists (reference aggregation)", False, "joint", **ref)
    add("hybrid -> top-50 playlists (reference aggregation)", False, "hybrid", **ref)
    add(f"joint space {pfx}", False, "joint", **tuned)
    qb = f", QB-Norm beta {c.qbnorm_beta:g}" if c.qbnorm_beta > 0 else ""
    if c.prf_weight > 0:
        add(f"{c.retrieval} {pfx}{qb}, no PRF", False, c.retrieval, **tuned,
            qbnorm_beta=c.qbnorm_beta)
    default = f"{c.retrieval} {pfx}{qb}" + (
        f", PRF weight {c.prf_weight:g}" if c.prf_weight > 0 else "")
    match = (c.artist_weight > 0 or c.genre_weight > 0) and not ev.searcher.metadata.empty
    if match:
        add(f"{default}, no metadata match", False, c.retrieval, **tuned,
            qbnorm_beta=c.qbnorm_beta, prf_weight=c.prf_weight)
        tag = (f" + artist / genre match (weights {c.artist_weight:g} / {c.genre_weight:g}, "
               f"power {c.match_power:g})")
        add(f"BM25 {pfx}, PRF weight {prf:g}{tag}", "ablation: peer + our PRF and match", "bm25",
            **tuned, prf_weight=prf, metadata=True)
        add(f"zero-shot caption {pfx}{tag}", "ablation: peer + our match", "caption", **tuned,
            metadata=True)
        default += tag
    add(f"**default**: {default}", False, c.retrieval, **tuned, qbnorm_beta=c.qbnorm_beta,
        prf_weight=c.prf_weight, metadata=match)
    if ev.typed is not None:  # every row above searched the bridged queries, peers too
        n = sum(a != b for a, b in zip(ev.queries, ev.typed, strict=True))
        add(f"default, queries as typed (no loanword bridge; it rewrote {n:,} of {ev.n:,})",
            False, c.retrieval, on=ev.as_typed(), **tuned, qbnorm_beta=c.qbnorm_beta,
            prf_weight=c.prf_weight, metadata=match)
    if c.qbnorm_beta <= 0:
        add(f"{c.retrieval} {pfx}, QB-Norm beta 10" + (
            f", PRF weight {c.prf_weight:g}" if c.prf_weight > 0 else ""), False, c.retrieval,
            **tuned, qbnorm_beta=10, prf_weight=c.prf_weight)
    best_peer = max(r["recall@50"] for _, peer, r in rows if peer == "yes")
    lines = [f"Keyword -> tracks ({ev.n:,} queries; relevant: all vocabulary tracks of the "
             f"held-out playlist; candidates: {len(ev.searcher.track_ids):,} tracks; ratio = "
             "Recall@50 / best peer's Recall@50; ablation rows are peers' retrieval with this "
             "project's pseudo-relevance feedback (PRF) or metadata match, not the issue's "
             "peers)", "",
             _row(["method", "peer", "Recall@10", "NDCG@10", "Recall@50", "NDCG@50", "ratio"]),
             _row(["---"] * 7)]
    for name, peer, r in rows:
        lines.append(_row([name, peer, *(_fmt(r[k]) for k in METRIC_KEYS),
                           f"{r['recall@50'] / best_peer:.2f}x"]))
    ours = next(r for name, _, r in rows if name == f"**default**: {default}")["recall@50"]
    best_abl = max(rows, key=lambda x: x[2]["recall@50"] if x[1].startswith("ablation")
                   else -1.0)
    lines += ["", f"Default Recall@50 {_fmt(ours)}: {ours / best_peer:.2f}x the best peer row "
              f"({_fmt(best_peer)}); {ours / best_abl[2]['recall@50']:.2f}x the best ablation "
              f"row ({best_abl[0]}, {_fmt(best_abl[2]['recall@50'])})."]
    return lines + [""]


SEARCH_DIMS = (0, 512, 256, 128, 64)


def dims_table(ev: TextEval) -> list[str]:
    """Keyword -> tracks with the default search on the first d principal directions of the
    hybrid space (`search_dims`), against the full space."""
    c = ev.searcher.cfg
    if c.retrieval != "hybrid":
        return []
    width = ev.searcher.joint.shape[1] + ev.searcher.captions_x.shape[1]
    lines = [f"Search space dimensions (`search_dims`; hybrid is {width}-d; default search, "
             f"the default is {c.search_dims or width})", "",
             _row(["search dims", "Recall@10", "NDCG@10", "Recall@50", "NDCG@50",
                   "x full Recall@50"]), _row(["---"] * 6)]
    full = None
    for d in SEARCH_DIMS:
        if d >= width:
            continue
        sims = ev.similarities("hybrid", c.caption_weight, dims=d)
        r = ranking_metrics(track_scores(ev, "hybrid", top_playlists=c.top_playlists,
                                         sim_power=c.sim_power, caption_weight=c.caption_weight,
                                         prf_weight=c.prf_weight, sims=sims), ev.relevant)
        full = r["recall@50"] if full is None else full
        lines.append(_row([d or f"{width} (full)", *(_fmt(r[k]) for k in METRIC_KEYS),
                           f"{r['recall@50'] / max(full, 1e-12):.3f}x"]))
    return lines + [""]


def _hubness_table(ev: TextEval) -> list[str]:
    c = ev.searcher.cfg
    lines = [f"Text-side hubness: k-occurrence of the top-{c.top_playlists} training playlists "
             f"over the {ev.n:,} queries ({len(ev.searcher.playlist_pids):,} playlists)", "",
             _row(["retrieval", "QB-Norm beta", "skewness", "Gini", "share of slots in top 1%",
                   "never retrieved", "max N_k"]), _row(["---"] * 7)]
    for method in ("bm25", "caption", "joint", "hybrid"):
        for beta in ((0.0,) if method == "bm25" else (0.0, 10.0)):
            h = retrieval_hubness(ev, method, c.top_playlists, beta, c.caption_weight)
            lines.append(_row([method, f"{beta:g}", f"{h['skewness']:.2f}", f"{h['gini']:.3f}",
                               f"{h['top1pct_share']:.3f}", f"{h['never_retrieved']:.3f}",
                               h["max_occurrence"]]))
    return lines + [""]


def _latency(searcher: TextSearcher, ev: TextEval, n: int) -> list[str]:
    from threadpoolctl import threadpool_limits

    queries = list(dict.fromkeys(ev.queries))[:max(n, 1)]
    total: list[float] = []
    encode: list[float] = []
    cpu: list[float] = []
    agg: list[float] = []
    agg_cpu: list[float] = []
    plain_cpu: list[float] = []
    no_match_cpu: list[float] = []
    cfg = searcher.cfg
    plain = dataclasses.replace(cfg, prf_weight=0.0)
    no_match = dataclasses.replace(cfg, artist_weight=0.0, genre_weight=0.0)
    variants = [(cfg, agg_cpu), (plain, plain_cpu), (no_match, no_match_cpu)]
    # One BLAS thread: a single query is a matrix-vector product, where threads only add
    # synchronisation (and the dev machine is shared).
    with threadpool_limits(limits=1, user_api="blas"):
        for q in queries[:20]:  # warm-up: lazy loads, caches
            searcher.search(q, k=50)
        for q in queries:
            t0 = time.perf_counter()
            searcher.encode_query(q)
            t1 = time.perf_counter()
            c1 = time.thread_time()
            searcher.search(q, k=50)
            c2 = time.thread_time()
            t2 = time.perf_counter()
            encode.append(t1 - t0)
            total.append(t2 - t1)
            cpu.append(c2 - c1)
            # The track ranking alone (what serving runs after its pgvector playlist search).
            rows, sims = searcher.top_playlists(searcher.encode_query(q)[None, :])
            # The default, without pseudo-relevance feedback and without the metadata match, in
            # rotating order (whichever runs later finds the playlists' occurrences in cache).
            shift = len(agg_cpu) % len(variants)
            for variant, out in variants[shift:] + variants[:shift]:
                searcher.cfg = variant
                try:
                    c3, t3 = time.thread_time(), time.perf_counter()
                    searcher.aggregate(rows[0], sims[0], 50, query=q)
                    t4, c4 = time.perf_counter(), time.thread_time()
                finally:
                    searcher.cfg = cfg
                if variant is cfg:
                    agg.append(t4 - t3)
                out.append(c4 - c3)
    tot = np.array(total) * 1e3
    enc = np.array(encode) * 1e3
    cpu_ms = np.array(cpu) * 1e3
    return [f"One-query latency after loading (`TextSearcher.search(q, k=50)`, one query at a "
            f"time, one BLAS thread, {len(queries)} distinct held-out captions): "
            f"p50 {np.percentile(tot, 50):.2f} ms, p99 {np.percentile(tot, 99):.2f} ms; "
            "of which encoding the query "
            f"p50 {np.percentile(enc, 50):.2f} ms, p99 {np.percentile(enc, 99):.2f} ms. CPU time "
            f"of the query's thread (what an unshared core would take; wall time above includes "
            f"waiting for a shared core): p50 {np.percentile(cpu_ms, 50):.2f} ms, "
            f"p99 {np.percentile(cpu_ms, 99):.2f} ms. The track ranking alone (`aggregate`, "
            f"PRF weight {searcher.cfg.prf_weight:g}): wall p50 "
            f"{np.percentile(agg, 50) * 1e3:.2f} ms, p99 {np.percentile(agg, 99) * 1e3:.2f} ms; "
            f"CPU p50 {np.percentile(agg_cpu, 50) * 1e3:.2f} ms, "
            f"p99 {np.percentile(agg_cpu, 99) * 1e3:.2f} ms (without PRF: CPU p50 "
            f"{np.percentile(plain_cpu, 50) * 1e3:.2f} ms, "
            f"p99 {np.percentile(plain_cpu, 99) * 1e3:.2f} ms; without the metadata match: CPU "
            f"p50 {np.percentile(no_match_cpu, 50) * 1e3:.2f} ms, "
            f"p99 {np.percentile(no_match_cpu, 99) * 1e3:.2f} ms).", ""]


def tune_grid(ev: TextEval) -> list[str]:
    """Validation grid: retrieval x caption weight x top playlists x similarity power (+QB)."""
    lines = ["Validation grid (keyword -> tracks)", "",
             _row(["retrieval", "caption weight", "top playlists", "similarity power",
                   "QB-Norm beta", "Recall@10", "NDCG@10", "Recall@50", "NDCG@50"]),
             _row(["---"] * 9)]
    results: list[tuple[float, list[Any]]] = []
    settings: list[tuple[str, float]] = [("bm25", 0.0), ("caption", 1.0), ("joint", 0.0)]
    settings += [("hybrid", w) for w in (0.25, 0.5, 0.75)]
    for method, w in settings:
        sims = ev.similarities(method, w)
        for top in (20, 50, 100):
            for power in (1.0, 2.0, 4.0):
                r = ranking_metrics(track_scores(ev, method, top_playlists=top, sim_power=power,
                                                 sims=sims), ev.relevant)
                cells = [method, w, top, power, 0, *(_fmt(r[k]) for k in METRIC_KEYS)]
                results.append((r["recall@50"], cells))
                lines.append(_row(cells))
    best = max((x for x in results if x[1][0] != "bm25"), key=lambda x: x[0])[1]
    method, w, top, power = best[0], float(best[1]), int(best[2]), float(best[3])
    for beta in (5.0, 10.0, 20.0, 40.0):
        r = ranking_metrics(track_scores(ev, method, top_playlists=top, sim_power=power,
                                         caption_weight=w, qbnorm_beta=beta), ev.relevant)
        lines.append(_row([method, w, top, power, beta, *(_fmt(r[k]) for k in METRIC_KEYS)]))
    for name in ("bm25", "caption", "joint", "hybrid"):
        b = max((x for x in results if x[1][0] == name), key=lambda x: x[0])[1]
        lines.append("")
        lines.append(f"best {name} by Recall@50: caption weight {b[1]}, top {b[2]}, "
                     f"power {b[3]}: Recall@50 {b[7]}")
    return lines + [""] + prf_grid(ev) + [""] + match_grid(ev)


PRF_WEIGHTS = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0)


def prf_grid(ev: TextEval) -> list[str]:
    """Validation grid of pseudo-relevance feedback: the configured retrieval, and the zero-shot
    and BM25 peers' retrievals with the same feedback (an ablation: is the gain ours alone?)."""
    c = ev.searcher.cfg
    lines = ["Validation grid: pseudo-relevance feedback (the retrieved playlists' tracks "
             "re-ranked in the track model's space)", "",
             _row(["retrieval", "caption weight", "top playlists", "similarity power",
                   "PRF weight", "Recall@10", "NDCG@10", "Recall@50", "NDCG@50"]),
             _row(["---"] * 9)]
    best: dict[str, tuple[float, list[Any]]] = {}
    for method, w in ((c.retrieval, c.caption_weight), ("caption", 1.0), ("bm25", 0.0)):
        sims = ev.similarities(method, w)
        for top in (50, 100):
            for power in (2.0, 4.0):
                for prf in PRF_WEIGHTS:
                    r = ranking_metrics(track_scores(ev, method, top_playlists=top,
                                                     sim_power=power, prf_weight=prf,
                                                     sims=sims), ev.relevant)
                    cells = [method, w, top, power, prf, *(_fmt(r[k]) for k in METRIC_KEYS)]
                    lines.append(_row(cells))
                    if method not in best or r["recall@50"] > best[method][0]:
                        best[method] = (r["recall@50"], cells)
    for method, (_, b) in best.items():
        lines += ["", f"best {method} with PRF by Recall@50: top {b[2]}, power {b[3]}, "
                      f"PRF weight {b[4]}: Recall@50 {b[7]}"]
    return lines


MATCH_WEIGHTS = (0.0, 2.0, 4.0, 8.0)
MATCH_POWERS = (1.0, 2.0, 4.0)


def match_grid(ev: TextEval) -> list[str]:
    """Validation grid of the metadata match (artist weight x genre weight x power) over the
    configured retrieval, aggregation and feedback; then each half of the queries chooses a
    point and the other half scores it (does the choice carry over?)."""
    s = ev.searcher
    c = s.cfg
    if s.metadata.empty:
        return ["The tracks have no artists or genres: no metadata-match grid.", ""]
    sims = ev.similarities(c.retrieval, c.caption_weight)
    halves = np.random.default_rng(0).integers(0, 2, ev.n)
    lines = ["Validation grid: the metadata match (the query's words in the tracks' artist "
             "names / genres)", "",
             _row(["artist weight", "genre weight", "power", "Recall@10", "NDCG@10", "Recall@50",
                   "NDCG@50", "half 0 Recall@50", "half 1 Recall@50"]), _row(["---"] * 9)]
    points: list[tuple[float, float, float, float, float, float]] = []
    try:
        for a in MATCH_WEIGHTS:
            for g in MATCH_WEIGHTS:
                for p in MATCH_POWERS if a or g else (1.0,):
                    s.cfg = dataclasses.replace(c, artist_weight=a, genre_weight=g,
                                                match_power=p)
                    sc = track_scores(ev, c.retrieval, top_playlists=c.top_playlists,
                                      sim_power=c.sim_power, caption_weight=c.caption_weight,
                                      prf_weight=c.prf_weight, sims=sims, metadata=True)
                    r = ranking_metrics(sc, ev.relevant)
                    h = [ranking_metrics(sc[halves == i], ev.relevant[halves == i])["recall@50"]
                         for i in (0, 1)]
                    points.append((a, g, p, r["recall@50"], h[0], h[1]))
                    lines.append(_row([a, g, p, *(_fmt(r[k]) for k in METRIC_KEYS),
                                       _fmt(h[0]), _fmt(h[1])]))
    finally:
        s.cfg = c
    off = next(x for x in points if x[0] == 0 and x[1] == 0)
    lines.append("")
    for i in (0, 1):
        b = max(points, key=lambda x: x[4 + i])
        other = 5 - i
        lines.append(f"half {i} chooses artist {b[0]:g} / genre {b[1]:g} / power {b[2]:g}: the "
                     f"other half's Recall@50 {b[other]:.4f} vs {off[other]:.4f} without the "
                     f"match ({b[other] / max(off[other], 1e-12):.3f}x)")
    return lines + [""]
