"""`dynplayer bench foldin` (choices on validation) and `dynplayer bench update` (an update
against a retrain, on the test split).

Models with different vocabularies are compared by track id over one universe, the full
corpus' tracks: a playlist's context is its visible tracks that the model has a vector for;
its targets are all of its held-out tracks, so a target a model has no vector for is a miss.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from dynplayer.data.corpus import TRAIN, Corpus, load_corpus
from dynplayer.run import Run, l2_normalize, load_run
from dynplayer.update.foldin import incidence
from dynplayer.update.merge import table_columns

# ---- id-based evaluation over one track universe ----------------------------------------------


def occurrence_matrix(corpus: Corpus, playlists: np.ndarray, mask: np.ndarray) -> sp.csr_matrix:
    """Binary (len(playlists), T) matrix of the occurrences selected by `mask` (O,)."""
    return incidence(corpus.occ_playlist[mask], corpus.occ_track[mask], playlists,
                     corpus.n_playlists, corpus.n_tracks)


def continuation_recall(vectors: np.ndarray, table_col: np.ndarray, visible: sp.csr_matrix,
                        targets: sp.csr_matrix, k: int = 10, special: np.ndarray | None = None,
                        batch: int = 256) -> dict[str, Any]:
    """Recall@k = hits in the top k / min(k, |targets|), over playlists with >= 1 usable
    visible track and >= 1 target; `special` (T,) bool counts the hits on those tracks too.

    vectors: (V, d) the model; table_col: (T,) row of each universe track, -1 = none.
    """
    targets = (targets - targets.multiply(visible)).tocsr()
    targets.eliminate_zeros()
    cols = np.flatnonzero(table_col >= 0)  # universe tracks the model has, in this order
    v = l2_normalize(vectors[table_col[cols]])
    vis_model = visible[:, cols].tocsr()
    usable = (np.diff(vis_model.indptr) > 0) & (np.diff(targets.indptr) > 0)
    rows = np.flatnonzero(usable)
    recalls: list[np.ndarray] = []
    special_hits = special_shown = 0
    for start in range(0, rows.shape[0], batch):
        r = rows[start:start + batch]
        vm = vis_model[r]
        q = l2_normalize(np.asarray(vm @ v))
        scores = q @ v.T
        rr = np.repeat(np.arange(r.shape[0]), np.diff(vm.indptr))
        scores[rr, vm.indices] = -np.inf
        top_tracks = cols[np.argpartition(-scores, k - 1, axis=1)[:, :k]]
        tg = targets[r]
        hits = np.asarray(tg[np.arange(r.shape[0])[:, None], top_tracks].todense()) > 0
        n_rel = np.diff(tg.indptr)
        recalls.append(hits.sum(axis=1) / np.minimum(k, n_rel))
        if special is not None:
            special_hits += int((hits & special[top_tracks]).sum())
            special_shown += int(special[top_tracks].sum())
    rec = np.concatenate(recalls) if recalls else np.zeros(0)
    out: dict[str, Any] = {f"recall@{k}": float(rec.mean()) if rec.size else 0.0,
                           "playlists": int(rows.shape[0])}
    if special is not None:
        out["hits_on_special"] = special_hits
        out["shown_special"] = special_shown  # times one is in a top k
    return out


# ---- bench update: update vs retrain on the test split -----------------------------------------


def _keyword_recall(run_dir: Path, corpus: Corpus, playlists: np.ndarray, relevant_mask: np.ndarray,
                    k: int = 50, special: np.ndarray | None = None) -> dict[str, Any]:
    """keyword -> tracks Recall@k of the run's text searcher: the caption of each playlist as
    the query, its tracks (by id, within `relevant_mask` (T,)) as the relevant set."""
    from dynplayer.text.search import TextSearcher

    searcher = TextSearcher.load(run_dir)
    idx = {t: i for i, t in enumerate(corpus.track_ids)}
    indptr = corpus.playlist_indptr
    recalls, special_hits, special_shown = [], 0, 0
    queries, rel_sets = [], []
    for p in playlists:
        cap = corpus.caption(int(p))
        tracks = corpus.occ_track[indptr[p]:indptr[p + 1]]
        rel = {int(t) for t in tracks if relevant_mask[t]}
        if cap and rel:
            queries.append(cap)
            rel_sets.append(rel)
    t0 = time.perf_counter()
    qv = searcher.encode_queries(queries)
    rows, sims = searcher.top_playlists(qv)
    for i, rel in enumerate(rel_sets):
        res = searcher.aggregate(rows[i], sims[i], k)
        got = [idx[h.track_id] for h in res.tracks[:k]]
        hit = [t for t in got if t in rel]
        recalls.append(len(hit) / min(k, len(rel)))
        if special is not None:
            special_hits += int(sum(bool(special[t]) for t in hit))
            special_shown += int(sum(bool(special[t]) for t in got))
    out: dict[str, Any] = {f"recall@{k}": float(np.mean(recalls)) if recalls else 0.0,
                           "queries": len(queries), "seconds": round(time.perf_counter() - t0, 2)}
    if special is not None:
        out["hits_on_special"] = special_hits
        out["shown_special"] = special_shown
    return out


def _train(corpus_dir: Path, out: Path, cfg: Any, log: list[str]) -> float:
    from dynplayer.text.model import TextConfig
    from dynplayer.text.train import train_text
    from dynplayer.train.loop import train_run
    from dynplayer.update.longtail import fold_in_long_tail

    t0 = time.perf_counter()
    stamp = out / ".bench-config.json"
    decisive = dict(cfg.__dict__)
    if not cfg.long_tail:  # the long-tail settings change nothing then
        decisive.pop("long_tail_min_playlists", None)
        decisive.pop("foldin_method", None)
    want = json.dumps({"train": decisive, "corpus": str(corpus_dir)}, sort_keys=True)
    if stamp.exists() and stamp.read_text() == want and (out / "text").is_dir():
        log.append(f"reused {out}")
        return float(json.loads((out / "metrics.json").read_text()).get("train_seconds", 0.0))
    if out.exists():
        shutil.rmtree(out)
    train_run(corpus_dir, out, cfg, progress=False)
    if cfg.long_tail:
        fold_in_long_tail(out, min_playlists=cfg.long_tail_min_playlists,
                          method=cfg.foldin_method)
    train_text(out, TextConfig())
    stamp.write_text(want)
    return time.perf_counter() - t0


def _copy_run(src: Path, dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, copy_function=os.link)
    return dst


def evaluate_models(full: Corpus, playlists: np.ndarray, models: dict[str, Path],
                    special: np.ndarray) -> dict[str, Any]:
    """Continuation Recall@10 and keyword -> tracks Recall@50 of each run on `playlists` of the
    full corpus (by track id in its universe), with the hits on the `special` tracks."""
    assert full.heldout is not None
    visible = occurrence_matrix(full, playlists, ~full.heldout)
    held = occurrence_matrix(full, playlists, full.heldout)
    selected = full.selected if full.selected is not None else np.ones(full.n_tracks, bool)
    results: dict[str, Any] = {}
    for name, d in models.items():
        run: Run = load_run(d)
        col = table_columns(full, run.ids)
        cont = continuation_recall(run.vectors, col, visible, held, special=special)
        kw = _keyword_recall(d, full, playlists, selected, special=special)
        results[name] = {"continuation": cont, "keyword": kw, "tracks": len(run.ids),
                         "special_tracks_with_vector": int((special & (col >= 0)).sum())}
    return results


def _only_new(full: Corpus, base: Corpus, back: np.ndarray) -> np.ndarray:
    """(T,) tracks of the full corpus in a held-back playlist and in no base training playlist
    (the base corpus still has the validation and test playlists, so such a track can be a
    target)."""
    assert base.split is not None
    base_train = set(np.unique(base.occ_track[base.split[base.occ_playlist] == TRAIN]).tolist())
    in_back = np.zeros(full.n_tracks, dtype=bool)
    in_back[full.occ_track[np.isin(full.occ_playlist, back)]] = True
    base_idx = {t: i for i, t in enumerate(base.track_ids)}
    out: np.ndarray = in_back & np.array([base_idx.get(t, -1) not in base_train
                                          for t in full.track_ids], dtype=bool)
    return out


def _rows(results: dict[str, Any]) -> list[str]:
    return [f"| {name} | {r['tracks']:,} | {r['continuation']['recall@10']:.4f} | "
            f"{r['keyword']['recall@50']:.4f} | {r['continuation']['hits_on_special']} / "
            f"{r['keyword']['hits_on_special']} | {r['continuation']['shown_special']:,} / "
            f"{r['keyword']['shown_special']:,} |" for name, r in results.items()]


HEADER = ["| model | tracks | continuation Recall@10 | keyword -> tracks Recall@50 | hits on "
          "tracks only the update brings (cont. / keyword) | times they are recommended "
          "(top 10 / top 50) |", "|---|---|---|---|---|---|"]


def bench_update(data: Path, work: Path, *, share: float = 0.2, timing_playlists: int = 1000,
                 train_cfg: Any = None, seed: int = 0, hold: str = "random",
                 choose: bool = False) -> dict[str, Any]:
    """Prepare the corpus, hold back `share` of its training playlists, train on the rest, update
    with the held-back ones (the first `timing_playlists` into a served run, timed, then the
    rest), retrain on everything, and compare on the test split.

    hold: `random` playlists, or `release`: tracks taken as released after the base was trained
    and every training playlist holding one (`holdback.hold_back_release`), so that the tracks
    only the update brings are test targets. choose: first compare the fold-in rules on the
    validation split (`update.choose`)."""
    from dynplayer.config import DataConfig
    from dynplayer.data.corpus import TEST, save_corpus
    from dynplayer.data.prepare import prepare
    from dynplayer.data.synthetic import write_jsonl
    from dynplayer.store.catalog import build_catalog, load_searcher
    from dynplayer.store.db import index_catalog
    from dynplayer.store.embedded import EmbeddedServer
    from dynplayer.train.config import TrainConfig
    from dynplayer.update.apply import update_run
    from dynplayer.update.holdback import hold_back, hold_back_release, subset

    if hold not in ("random", "release"):
        from dynplayer.errors import ConfigError

        raise ConfigError(f"--hold: expected random or release, got {hold!r}")
    cfg = train_cfg or TrainConfig()
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    log: list[str] = []
    t0 = time.perf_counter()
    full_dir = work / "corpus-full"
    if not (full_dir / "manifest.json").exists():
        prepare([data], full_dir, DataConfig())
    full = load_corpus(full_dir)
    releases = np.zeros(0, dtype=np.int64)
    if hold == "release":
        kept, back, releases = hold_back_release(full, share, seed=seed)
    else:
        kept, back = hold_back(full, share, seed=seed)
    tag = "" if hold == "random" else "-release"
    base_dir = work / f"corpus-base{tag}"
    base = subset(full, kept, drop_tracks=releases)
    if not (base_dir / "manifest.json").exists():
        save_corpus(base, base_dir)
    base = load_corpus(base_dir)
    new = subset(full, back, derive=False)
    first = subset(new, np.arange(min(timing_playlists, new.n_playlists)), derive=False)
    rest = subset(new, np.arange(first.n_playlists, new.n_playlists), derive=False) \
        if new.n_playlists > first.n_playlists else None
    files = [work / f"update{tag}-1.jsonl"]
    write_jsonl(first, files[0], work / f"update{tag}-1.tracks.jsonl")
    if rest is not None:
        files.append(work / f"update{tag}-2.jsonl")
        write_jsonl(rest, files[1], work / f"update{tag}-2.tracks.jsonl")
    t_prep = time.perf_counter() - t0

    t_base = _train(base_dir, work / f"base{tag}", cfg, log)
    t_full = _train(full_dir, work / "retrain", cfg, log)
    only_new = _only_new(full, base, back)
    assert full.heldout is not None and full.split is not None
    chosen = None
    if choose:
        from dynplayer.update.choose import choose_rule

        chosen = choose_rule(full, work / f"base{tag}", work / "retrain", files,
                             work / f"choose{tag}", only_new)

    # The served update: the base run indexed in its own embedded PostgreSQL, then updated.
    updated = _copy_run(work / f"base{tag}", work / f"updated{tag}")
    server = EmbeddedServer(work / "pgdata", delete_on_stop=True)
    url = server.start()
    try:
        t_ix = time.perf_counter()
        index_catalog(url, build_catalog(updated, load_searcher(updated)))
        t_index = time.perf_counter() - t_ix
        t_up = time.perf_counter()
        r1 = update_run(updated, files[:1], tracks=[files[0].with_suffix(".tracks.jsonl")],
                        database_url=url, progress=False)
        t_update = time.perf_counter() - t_up
        r2 = update_run(updated, files[1:], tracks=[files[1].with_suffix(".tracks.jsonl")],
                        database_url=url, progress=False) if rest is not None else None
    finally:
        server.stop()

    # Evaluation on the test split, in the full corpus' track universe.
    test = full.playlists_in(TEST)
    results = evaluate_models(full, test, {"base": work / f"base{tag}", "updated": updated,
                                           "retrain": work / "retrain"}, only_new)
    ratio_c = results["updated"]["continuation"]["recall@10"] / max(
        results["retrain"]["continuation"]["recall@10"], 1e-12)
    ratio_k = results["updated"]["keyword"]["recall@50"] / max(
        results["retrain"]["keyword"]["recall@50"], 1e-12)
    what = (f"{releases.shape[0]:,} tracks taken as new releases, their {back.shape[0]:,} "
            f"training playlists" if hold == "release" else
            f"{back.shape[0]:,} of {int((full.split == TRAIN).sum()):,} training playlists "
            f"({share:.0%})")
    manifest = json.loads((updated / "manifest.json").read_text())
    lines = [f"bench update: {data} -> {full.n_playlists:,} playlists; {what} held back for "
             f"the update; {int(only_new.sum()):,} tracks only they bring, "
             f"{int(only_new[np.unique(heldout_tracks(full, test))].sum()):,} of them test "
             f"targets; fold-in: {manifest.get('method')}, eligible "
             f"{manifest.get('eligible')}, N = {manifest.get('min_playlists')}, calibrate "
             f"{manifest.get('calibrate')}", ""]
    if chosen is not None:
        lines += [chosen["table"], ""]
    lines += ["test split:", "", *HEADER, *_rows(results)]
    lines += ["", f"updated / retrain: continuation {ratio_c:.3f}x, keyword {ratio_k:.3f}x "
              "(target >= 0.97x)", "",
              f"served update of {first.n_playlists:,} playlists (index inserts included): "
              f"{t_update:.1f} s wall (target <= 15 s); steps {r1.seconds}; index "
              f"{r1.index}", f"full index of the base run for comparison: {t_index:.1f} s",
              f"training: base {t_base:.0f} s, retrain {t_full:.0f} s (train + train-text); "
              f"preparation {t_prep:.0f} s; cpus {os.cpu_count()}; {'; '.join(log)}"]
    return {"results": results, "ratio_continuation": ratio_c, "ratio_keyword": ratio_k,
            "hold": hold, "releases": int(releases.shape[0]), "held_back": int(back.shape[0]),
            "only_new_tracks": int(only_new.sum()), "choose": chosen,
            "update_seconds": t_update, "update_report": r1.as_dict(),
            "second_update": r2.as_dict() if r2 is not None else None,
            "index_seconds": t_index, "train_seconds": {"base": t_base, "retrain": t_full},
            "config": replace(cfg).__dict__, "table": "\n".join(lines)}


def heldout_tracks(full: Corpus, playlists: np.ndarray) -> np.ndarray:
    """track_idx of every held-out occurrence of `playlists` (with repeats)."""
    assert full.heldout is not None
    out: np.ndarray = occurrence_matrix(full, playlists, full.heldout).indices
    return out
