"""`dynplayer bench library`: the library feature measured with a protocol.

* Matching: the tracks of test-split playlists (and unrelated catalogue tracks), tags perturbed
  (`simulate.perturb`), plus decoys; matched right / wrong / not, where a match to another
  catalogue id of the same song (same primary artist and core title) counts as right.
  `--tune` first chooses the cut-offs on a labelled set built the same way from tracks that
  occur in training playlists only (seed + 1000), never on the evaluated tracks.
* Continuation: each simulated library = the tracks of `playlists` test playlists + `unrelated`
  other catalogue tracks, tagged and matched as above. For each of its playlists, the seeds are
  the library tracks standing for its visible tracks, the hits its held-out tracks that the
  library holds; every method ranks the library only (seeds and repeats excluded), k = 20:
  Dynplayer (embedding, two-stage when RUN_DIR/ranker/ exists), and peers on the same matches:
  popularity in the catalogue, same artist (then popularity), item-kNN (cosine co-occurrence in
  the training playlists over the whole catalogue, not only tracks with a vector).
* Latency: one mix (20 tracks with their "because") on a 20,000-track library, p50.
* `--server`: `server_tracks` tiny MP3 files tagged like the library, served by a local
  Supysonic; the import (read + match + store) is timed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from dynplayer.data.corpus import TEST, TRAIN, VAL, load_corpus
from dynplayer.library.answers import LibraryModel
from dynplayer.library.match import Catalogue, Match, MatchConfig, Matcher, catalogue_of
from dynplayer.library.simulate import TaggedSet, decoys, tagged
from dynplayer.library.store import Library
from dynplayer.library.tagkeys import identity
from dynplayer.run import load_run

K = 20


@dataclass
class BenchConfig:
    libraries: int = 20
    playlists: int = 25
    unrelated: int = 2000
    tune: bool = False
    server: bool = False
    server_tracks: int = 20000
    import_tracks: int = 0  # > 0: time `library import` of a CSV library of this many tracks
    seed: int = 0
    latency_mixes: int = 200  # 0: no latency measurement
    split: str = "test"  # "val" to choose settings (PLACED_PENALTY)
    placed_penalty: float | None = None  # None: the default (answers.PLACED_PENALTY)


def match_quality(cat: Catalogue, matcher: Matcher, ts: TaggedSet) -> dict[str, Any]:
    """Right / wrong / unmatched among tracks the catalogue holds; what decoys became."""
    return quality(cat, matcher.match_all(ts.tracks), ts)


def quality(cat: Catalogue, matches: list[Match], ts: TaggedSet) -> dict[str, Any]:
    """`match_quality` of matches already made (one per track of `ts`)."""
    right = wrong = none = 0
    decoy = {"artist": [0, 0], "none": [0, 0]}  # kind -> [placed as expected, false match]
    for m, truth, kind in zip(matches, ts.truth.tolist(), ts.decoy_kind, strict=True):
        if truth < 0:
            if m.track_id is not None:
                decoy[kind][1] += 1
            elif (kind == "artist") == (m.how == "artist"):
                decoy[kind][0] += 1
            continue
        if m.track_id is None:
            none += 1
            continue
        j = cat.id_index[m.track_id]
        same = j == truth or identity(cat.artists[j], cat.names[j]) == \
            identity(cat.artists[truth], cat.names[truth])
        right += same
        wrong += not same
    n = right + wrong + none
    n_dec = sum(v[0] + v[1] for v in decoy.values()) or 1
    return {"tracks": n, "right": right, "wrong": wrong, "unmatched": none,
            "recall": right / max(n, 1), "wrong_rate": wrong / max(n, 1),
            "precision": right / max(right + wrong, 1),
            "decoys": int(sum(k == "artist" or k == "none" for k in ts.decoy_kind)),
            "decoy_false_match": sum(v[1] for v in decoy.values()) / n_dec,
            "decoy_artist_placed": decoy["artist"][0] / max(sum(decoy["artist"]), 1)}


def tune(cat: Catalogue, corpus: Any, seed: int, log: Callable[[str], None]) -> dict[str, Any]:
    """The cut-off grid on the labelled set (training-only tracks); the choice: the highest
    recall with wrong <= 0.5% and decoy false matches <= 1%."""
    rng = np.random.default_rng(seed + 1000)
    in_eval = np.zeros(corpus.n_tracks, dtype=bool)
    assert corpus.split is not None
    held = np.isin(corpus.occ_playlist, np.flatnonzero(corpus.split != TRAIN))
    in_eval[corpus.occ_track[held]] = True
    pool = np.flatnonzero(~in_eval & (np.bincount(corpus.occ_track,
                                                  minlength=corpus.n_tracks) > 0))
    pick = rng.choice(pool, size=min(3000, pool.size), replace=False)
    ts = tagged(pick, corpus.track_names, corpus.artists, rng, "T")
    known = {identity(a, n) for a, n in zip(corpus.artists, corpus.track_names, strict=True)
             if a and n}
    d = decoys(600, corpus.track_names, corpus.artists, known, rng, "TD")
    both = TaggedSet(ts.tracks + d.tracks, np.r_[ts.truth, d.truth],
                     ts.decoy_kind + d.decoy_kind)
    grid = []
    for a_cut in (85.0, 88.0, 90.0, 92.0, 95.0):
        for t_cut in (80.0, 83.0, 86.0, 88.0, 90.0, 93.0):
            q = match_quality(cat, Matcher(cat, MatchConfig(a_cut, t_cut)), both)
            grid.append({"artist_cutoff": a_cut, "title_cutoff": t_cut, **q})
            log(f"  tune artist {a_cut:g} title {t_cut:g}: recall {q['recall']:.4f} wrong "
                f"{q['wrong_rate']:.4f} decoys matched {q['decoy_false_match']:.4f}")
    ok = [g for g in grid if g["wrong_rate"] <= 0.005 and g["decoy_false_match"] <= 0.01]
    best = max(ok or grid, key=lambda g: (g["recall"], -g["wrong_rate"], g["title_cutoff"]))
    return {"labelled_tracks": len(ts.tracks), "labelled_decoys": len(d.tracks), "grid": grid,
            "chosen": {"artist_cutoff": best["artist_cutoff"],
                       "title_cutoff": best["title_cutoff"]}}


def _metrics(ranked: list[int], targets: set[int]) -> tuple[float, float]:
    hits = [1.0 if r in targets else 0.0 for r in ranked[:K]]
    n = min(K, len(targets))
    dcg = sum(h / np.log2(i + 2) for i, h in enumerate(hits))
    idcg = sum(1.0 / np.log2(i + 2) for i in range(n))
    return sum(hits) / n, dcg / idcg


class Peers:
    """Library-restricted peers over one simulated library's matches."""

    def __init__(self, model: LibraryModel, x: sp.csc_matrix, pop: np.ndarray) -> None:
        cat_row = {t: i for i, t in enumerate(model.corpus.track_ids)}
        self.model = model
        self.col = np.array([cat_row.get(m.track_id, -1) if m.track_id else -1
                             for m in model.library.matches], dtype=np.int64)
        self.pop = np.where(self.col >= 0, pop[self.col.clip(0)], 0).astype(np.float64)
        self.x = x
        self.sqrt_pop = np.sqrt(np.maximum(pop, 1.0))

    def _order(self, score: np.ndarray, seeds: list[int], per_artist: int = 0) -> list[int]:
        score = score.astype(np.float64).copy()
        score[seeds] = -np.inf
        # ties by popularity, then library order
        ranked = np.lexsort((np.arange(score.size), -self.pop, -score))
        order = [int(i) for i in ranked if np.isfinite(score[i])]
        out, _ = self.model._pick(order, np.zeros(len(order)), K, per_artist, seeds)
        return out

    def popularity(self, seeds: list[int]) -> list[int]:
        return self._order(np.zeros(self.pop.size), seeds)

    def same_artist(self, seeds: list[int]) -> list[int]:
        arts = {self.model.artist_of[s] for s in seeds}
        return self._order(np.array([a in arts for a in self.model.artist_of], float), seeds)

    def itemknn(self, seeds: list[int], per_artist: int = 0) -> list[int]:
        cols = self.col[seeds]
        cols = cols[cols >= 0]
        score = np.zeros(self.pop.size)
        if cols.size:
            v = self.x[:, cols] @ (1.0 / self.sqrt_pop[cols])
            have = self.col >= 0
            lib = self.col[have]
            score[have] = (self.x[:, lib].T @ v) / self.sqrt_pop[lib]
        return self._order(score, seeds, per_artist)


def run_bench(run_dir: Path, cfg: BenchConfig,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    say = log or (lambda _m: None)
    t_start = time.perf_counter()
    run = load_run(run_dir)
    corpus = load_corpus(run.corpus_dir)
    cat = catalogue_of(run, corpus)
    rng = np.random.default_rng(cfg.seed)
    report: dict[str, Any] = {"config": asdict(cfg), "run": str(run_dir)}
    if cfg.tune:
        say("tuning the match cut-offs on the labelled set (training-split tracks) ...")
        report["tune"] = tune(cat, corpus, cfg.seed, say)
        chosen = report["tune"]["chosen"]
        mcfg = MatchConfig(chosen["artist_cutoff"], chosen["title_cutoff"])
    else:
        mcfg = MatchConfig()
    report["match_config"] = asdict(mcfg)
    matcher = Matcher(cat, mcfg)
    stage = None
    from dynplayer.rank.stage import has_ranker, load_stage

    if has_ranker(run_dir) and (cfg.libraries > 0 or cfg.latency_mixes > 0):
        from dynplayer.eval.runner import run_vocab

        stage = load_stage(run, corpus, run_vocab(run, corpus))
    assert corpus.split is not None and corpus.heldout is not None
    ip = corpus.playlist_indptr
    tests = rng.permutation(corpus.playlists_in(TEST if cfg.split == "test" else VAL))
    in_pl = np.zeros(corpus.n_tracks, dtype=bool)
    in_pl[corpus.occ_track] = True
    others = np.flatnonzero(in_pl)
    train_pl = np.flatnonzero(corpus.split != VAL) if run.config.get("full") else \
        corpus.playlists_in(TRAIN)
    keep = np.isin(corpus.occ_playlist, train_pl)
    x = sp.csr_matrix((np.ones(int(keep.sum()), np.float32),
                       (corpus.occ_playlist[keep], corpus.occ_track[keep])),
                      shape=(corpus.n_playlists, corpus.n_tracks)).tocsc()
    x.data[:] = 1.0
    pop = np.asarray(x.sum(axis=0)).ravel()
    known = {identity(a, n) for a, n in zip(corpus.artists, corpus.track_names, strict=True)
             if a and n}
    penalty = {} if cfg.placed_penalty is None else {"placed_penalty": cfg.placed_penalty}
    methods = ["dynplayer", "dynplayer two-stage", "dynplayer mix (2 per artist)",
               "popularity", "same artist", "itemknn", "itemknn (2 per artist)"]
    sums = {m: [0.0, 0.0] for m in methods}
    n_eval = 0
    match_sets: list[TaggedSet] = []
    for li in range(cfg.libraries):
        pls = tests[li * cfg.playlists:(li + 1) * cfg.playlists]
        if pls.size == 0:
            break
        own = np.unique(np.concatenate([corpus.occ_track[ip[p]:ip[p + 1]] for p in pls]))
        extra = rng.choice(others[~np.isin(others, own)], size=cfg.unrelated, replace=False)
        ts = tagged(np.r_[own, extra], corpus.track_names, corpus.artists, rng, f"L{li}-")
        dec = decoys(max(len(ts.tracks) // 20, 1), corpus.track_names, corpus.artists,
                     known, rng, f"D{li}-")
        both = TaggedSet(ts.tracks + dec.tracks, np.r_[ts.truth, dec.truth],
                         ts.decoy_kind + dec.decoy_kind)
        match_sets.append(both)
        lib = Library(f"sim{li}", Path(run_dir), {}, both.tracks, matcher.match_all(both.tracks))
        model = LibraryModel(run, corpus, lib, stage=stage, **penalty)
        peers = Peers(model, x, pop)
        row_of = {int(t): i for i, t in enumerate(both.truth.tolist()) if t >= 0}
        for p in pls.tolist():
            occ = slice(ip[p], ip[p + 1])
            vis = {row_of[t] for t, h in zip(corpus.occ_track[occ].tolist(),
                                             corpus.heldout[occ].tolist(), strict=True)
                   if not h and t in row_of}
            seeds = [s for s in sorted(vis) if model.usable[s]]
            targets = {row_of[t] for t, h in zip(corpus.occ_track[occ].tolist(),
                                                 corpus.heldout[occ].tolist(), strict=True)
                       if h and t in row_of} - vis
            if not seeds or not targets:
                continue
            n_eval += 1
            model.stage = None
            ranked = {"dynplayer": model.continuation(seeds, K)[0]}
            model.stage = stage
            ranked["dynplayer two-stage"] = model.continuation(seeds, K)[0] if stage \
                else ranked["dynplayer"]
            ranked["dynplayer mix (2 per artist)"] = model.continuation(seeds, K, 2)[0]
            ranked["popularity"] = peers.popularity(seeds)
            ranked["same artist"] = peers.same_artist(seeds)
            ranked["itemknn"] = peers.itemknn(seeds)
            # the mix's own cap on its peer: a capped list against a capped list
            ranked["itemknn (2 per artist)"] = peers.itemknn(seeds, 2)
            for m, r in ranked.items():
                rec, ndcg = _metrics(r, targets)
                sums[m][0] += rec
                sums[m][1] += ndcg
        say(f"library {li + 1}/{cfg.libraries}: {len(both.tracks):,} tracks, "
            f"{n_eval} playlists evaluated so far")
    if match_sets:  # --libraries 0: only the latency and the server import
        report["continuation"] = {m: {"recall@20": v[0] / max(n_eval, 1),
                                      "ndcg@20": v[1] / max(n_eval, 1)}
                                  for m, v in sums.items()}
        report["continuation_playlists"] = n_eval
        allset = TaggedSet([t for s in match_sets for t in s.tracks],
                           np.concatenate([s.truth for s in match_sets]),
                           [k for s in match_sets for k in s.decoy_kind])
        report["matching"] = match_quality(cat, matcher, allset)
    if cfg.latency_mixes > 0:
        report["latency"] = mix_latency(run, corpus, matcher, stage, rng, cfg, tests, others)
    if cfg.server:
        from dynplayer.library.serverbench import server_import

        report["server"] = server_import(run_dir, cat, corpus, rng, cfg.server_tracks, say)
    if cfg.import_tracks > 0:
        from dynplayer.library.importbench import csv_import

        report["import"] = csv_import(run_dir, cat, corpus, rng, cfg.import_tracks, say)
    report["seconds"] = round(time.perf_counter() - t_start, 1)
    return report


def mix_latency(run: Any, corpus: Any, matcher: Matcher, stage: Any, rng: np.random.Generator,
                cfg: BenchConfig, tests: np.ndarray, others: np.ndarray) -> dict[str, Any]:
    """p50 / p90 ms of one mix (k 20, 2 per artist, with because) on a 20,000-track library."""
    pick = rng.choice(others, size=min(20000, others.size), replace=False)
    ts = tagged(pick, corpus.track_names, corpus.artists, rng, "M")
    lib = Library("latency", run.path, {}, ts.tracks, matcher.match_all(ts.tracks))
    model = LibraryModel(run, corpus, lib, stage=stage)
    usable = np.flatnonzero(model.usable & (model.run_row >= 0))
    seeds = rng.choice(usable, size=min(cfg.latency_mixes, usable.size), replace=False)
    import os

    from threadpoolctl import threadpool_limits

    times, cpu = [], []
    with threadpool_limits(limits=1, user_api="blas"):  # one request, one thread, as served
        for s in seeds.tolist():
            t, c = time.perf_counter(), time.process_time()
            model.mix([model.ids[s]], K, 2)
            times.append(1e3 * (time.perf_counter() - t))
            cpu.append(1e3 * (time.process_time() - c))
    return {"library_tracks": len(ts.tracks), "usable": int(model.usable.sum()),
            "mixes": len(times), "p50_ms": float(np.median(times)),
            "p90_ms": float(np.percentile(times, 90)), "cpu_p50_ms": float(np.median(cpu)),
            "load_average": round(os.getloadavg()[0], 1),
            "method": "two-stage" if stage is not None else "embedding"}


def render(report: dict[str, Any]) -> str:
    lines: list[str] = []
    if "continuation" in report:
        lines += _render_quality(report)
    lat = report.get("latency")
    if lat:
        lines.append(f"Mix latency ({lat['library_tracks']:,}-track library, {lat['method']}): "
                     f"p50 {lat['p50_ms']:.1f} ms, p90 {lat['p90_ms']:.1f} ms wall; CPU p50 "
                     f"{lat['cpu_p50_ms']:.1f} ms (load average {lat['load_average']})")
    if "tune" in report:
        lines.append(f"Tuned on {report['tune']['labelled_tracks']:,} labelled tracks + "
                     f"{report['tune']['labelled_decoys']} decoys: {report['tune']['chosen']}")
    if "server" in report:
        s = report["server"]
        lines.append(f"Import from Supysonic: {s['tracks']:,} songs in {s['import_s']:.1f} s "
                     f"(read {s['read_s']:.1f}, match index {s.get('index', 'built')} "
                     f"{s['catalogue_s']:.1f}, match "
                     f"{s['match_s']:.1f}); server scan {s['scan_s']:.0f} s (not counted)")
    if "import" in report:
        from dynplayer.library.importbench import render_import

        lines += render_import(report["import"])
    return "\n".join(lines)


def _render_quality(report: dict[str, Any]) -> list[str]:
    c = report["continuation"]
    peers = ["popularity", "same artist", "itemknn"]
    best = max(peers, key=lambda p: c[p]["recall@20"])
    best_n = max(peers, key=lambda p: c[p]["ndcg@20"])
    lines = [f"Continuation within simulated libraries: {report['continuation_playlists']} "
             f"{report['config']['split']} playlists, k = {K}", "",
             "| method | recall@20 | ndcg@20 |", "|---|---:|---:|"]
    for m, v in c.items():
        lines.append(f"| {m} | {v['recall@20']:.4f} | {v['ndcg@20']:.4f} |")
    for m in ("dynplayer", "dynplayer two-stage"):
        lines.append(f"\n{m}: recall@20 {c[m]['recall@20'] / max(c[best]['recall@20'], 1e-9):.3f}x"
                     f" the best peer ({best}), ndcg@20 "
                     f"{c[m]['ndcg@20'] / max(c[best_n]['ndcg@20'], 1e-9):.3f}x ({best_n})")
    mix, capped = c.get("dynplayer mix (2 per artist)"), c.get("itemknn (2 per artist)")
    if mix and capped:
        lines.append(f"\ndynplayer mix (2 per artist): recall@20 "
                     f"{mix['recall@20'] / max(capped['recall@20'], 1e-9):.3f}x, ndcg@20 "
                     f"{mix['ndcg@20'] / max(capped['ndcg@20'], 1e-9):.3f}x item-kNN with the "
                     "same cap")
    mq = report["matching"]
    lines += ["", f"Matching ({mq['tracks']:,} library tracks the catalogue holds, "
              f"{mq['decoys']:,} decoys; cut-offs {report['match_config']}): recall "
              f"{mq['recall']:.4f}, wrong {mq['wrong_rate']:.4f}, precision "
              f"{mq['precision']:.4f}; decoys falsely matched {mq['decoy_false_match']:.4f}, "
              f"invented titles placed by their artist {mq['decoy_artist_placed']:.4f}"]
    return lines


__all__ = ["BenchConfig", "match_quality", "render", "run_bench", "tune"]
