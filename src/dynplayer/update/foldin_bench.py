"""`dynplayer bench foldin`: the fold-in method, N and calibration chosen on validation, by
hiding trained tracks and folding them back in, and by folding in the long tail."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from dynplayer.data.corpus import VAL, load_corpus
from dynplayer.run import l2_normalize, load_run
from dynplayer.update.bench import continuation_recall, occurrence_matrix
from dynplayer.update.foldin import METHODS, fold_in, incidence
from dynplayer.update.merge import table_columns

# ---- bench foldin: method and N on validation --------------------------------------------------


def bench_foldin(run_dir: Path, *, hide: float = 0.2, seed: int = 0,
                 min_playlists_grid: tuple[int, ...] = (2, 3, 5, 10),
                 calibrate_grid: tuple[float, ...] = (0.0, 0.5, 0.75, 1.0)) -> dict[str, Any]:
    """On the run's validation split only.

    A. Method: hide `hide` of the vectored tracks, fold them back in from the training
       playlists with each method (N = 1), and compare validation continuation Recall@10 with
       the trained table's and with the table without the hidden tracks, plus the cosine of
       each folded vector with its trained one.
    B. N and the long tail: fold in every track below the selection threshold with >= N
       training playlists; validation Recall@10 where the targets are the held-out tracks plus
       every other track of the playlist (long tail included), and on the usual targets.
    """
    from dynplayer.update.longtail import reach
    from dynplayer.update.merge import learning_playlists

    run = load_run(run_dir)
    corpus = load_corpus(run.corpus_dir)
    corpus.require_split()
    assert corpus.heldout is not None
    table_col = table_columns(corpus, run.ids)
    learn = learning_playlists(corpus, run)
    x = incidence(corpus.occ_playlist, corpus.occ_track, learn, corpus.n_playlists,
                  corpus.n_tracks)
    val = corpus.playlists_in(VAL)
    has_vec = table_col >= 0
    visible = occurrence_matrix(corpus, val, ~corpus.heldout & has_vec[corpus.occ_track])
    held = occurrence_matrix(corpus, val, corpus.heldout)
    temperature = float(run.config.get("train", {}).get("temperature", 0.07))
    out: dict[str, Any] = {"run": str(run_dir), "validation_playlists": int(val.shape[0])}
    lines = [f"fold-in on validation, run {run_dir} ({len(run.ids):,} trained tracks)", "",
             f"A. methods: {hide:.0%} of the vectored tracks hidden, folded back in (N = 1)", "",
             "| table | val Recall@10 | x trained | cosine to trained | folded | seconds |",
             "|---|---|---|---|---|---|"]
    trained = continuation_recall(run.vectors, table_col, visible, held)
    lines.append(f"| trained | {trained['recall@10']:.4f} | 1.000 | | | |")
    rng = np.random.default_rng(seed)
    hidden_rows = np.sort(rng.choice(len(run.ids), int(hide * len(run.ids)), replace=False))
    hidden = np.flatnonzero(np.isin(table_col, hidden_rows))
    col_hidden = table_col.copy()
    col_hidden[hidden] = -1
    # Without the hidden tracks: the same contexts minus them, and they cannot be recommended.
    without = continuation_recall(run.vectors, col_hidden, visible, held)
    lines.append(f"| hidden tracks removed | {without['recall@10']:.4f} | "
                 f"{without['recall@10'] / trained['recall@10']:.3f} | | | |")
    out["trained"], out["without_hidden"], out["methods"] = trained, without, {}
    for method, cal in [(m, c) for m in METHODS for c in (0.0, 1.0)]:
        t0 = time.perf_counter()
        f = fold_in(x, run.vectors, col_hidden, min_playlists=1, method=method,
                    candidates=hidden, temperature=temperature, calibrate=cal)
        secs = time.perf_counter() - t0
        table = run.vectors.copy()
        table[table_col[f.track_idx]] = f.vectors
        col = col_hidden.copy()
        col[f.track_idx] = table_col[f.track_idx]
        m = continuation_recall(table, col, visible, held)
        cos = float(np.mean(np.sum(l2_normalize(run.vectors)[table_col[f.track_idx]] * f.vectors,
                                   axis=1))) if f.track_idx.size else 0.0
        name = f"{method}, calibrate {cal:g}"
        out["methods"][name] = {**m, "cosine": cos, "folded": int(f.track_idx.shape[0]),
                                "seconds": round(secs, 3), "method": method, "calibrate": cal}
        lines.append(f"| {name} | {m['recall@10']:.4f} | "
                     f"{m['recall@10'] / trained['recall@10']:.3f} | {cos:.3f} | "
                     f"{f.track_idx.shape[0]:,} / {hidden.shape[0]:,} | {secs:.2f} |")
    best_key = max(out["methods"], key=lambda k: out["methods"][k]["recall@10"])
    best = out["methods"][best_key]["method"]
    out["best_method"] = best

    lines += ["", f"B. long tail: tracks below the selection threshold folded in ({best}) when in "
              ">= N training playlists", "",
              "| N | calibrate | tracks folded | reach | val Recall@10, all targets | val "
              "Recall@10, held-out targets |", "|---|---|---|---|---|---|"]
    # Every track of the playlist that is not visible is a target (long tail included).
    all_targets = occurrence_matrix(corpus, val, np.ones(corpus.n_occurrences, dtype=bool))
    base_all = continuation_recall(run.vectors, table_col, visible, all_targets)
    r0 = reach(corpus, run.ids)
    lines.append(f"| none | | 0 | {r0['reach']:.3f} | {base_all['recall@10']:.4f} | "
                 f"{trained['recall@10']:.4f} |")
    out["long_tail"] = {"none": {"all_targets": base_all, "heldout": trained, "reach": r0}}
    choice = ("none", 0.0)
    for n, cal in [(n, c) for n in min_playlists_grid for c in calibrate_grid]:
        f = fold_in(x, run.vectors, table_col, min_playlists=n, method=best,
                    temperature=temperature, calibrate=cal)
        table = np.concatenate([run.vectors, f.vectors])
        col = table_col.copy()
        col[f.track_idx] = len(run.ids) + np.arange(f.track_idx.shape[0])
        ids = [*run.ids, *(corpus.track_ids[t] for t in f.track_idx)]
        m_all = continuation_recall(table, col, visible, all_targets)
        m_held = continuation_recall(table, col, visible, held)
        rn = reach(corpus, ids)
        out["long_tail"][f"{n}, {cal:g}"] = {"all_targets": m_all, "heldout": m_held,
                                             "reach": rn, "folded": int(f.track_idx.shape[0]),
                                             "min_playlists": n, "calibrate": cal}
        lines.append(f"| {n} | {cal:g} | {f.track_idx.shape[0]:,} | {rn['reach']:.3f} | "
                     f"{m_all['recall@10']:.4f} | {m_held['recall@10']:.4f} |")
        out["long_tail"][f"{n}, {cal:g}"]["keeps"] = bool(
            m_held["recall@10"] >= 0.97 * trained["recall@10"])
    # The rule: among the settings that keep >= 0.97x of the trained table's recall on the usual
    # (held-out) targets, those within 0.5% of the most all-target recall; of them the largest N
    # (fewer rows to fold and insert for the same recall), then the largest calibrate.
    ok = {k: v for k, v in out["long_tail"].items() if k != "none" and v["keeps"]}
    if ok:
        top = max(v["all_targets"]["recall@10"] for v in ok.values())
        near = [v for v in ok.values() if v["all_targets"]["recall@10"] >= 0.995 * top]
        pick = max(near, key=lambda v: (v["min_playlists"], v["calibrate"]))
        choice = (str(pick["min_playlists"]), float(pick["calibrate"]))
    out["choice"] = {"min_playlists": choice[0], "calibrate": choice[1], "method": best}
    lines += ["", f"chosen (within 0.5% of the most all-target recall, keeping >= 0.97x on "
              "held-out targets; largest N): "
              f"method {best}, N = {choice[0]}, calibrate {choice[1]:g}"]
    out["table"] = "\n".join(lines)
    return out
