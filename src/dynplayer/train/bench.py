"""`dynplayer bench train`: wall time and throughput of default training beside gensim item2vec
(Word2Vec skip-gram, window 10) on the same training sequences, measured in the same process."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dynplayer.data.corpus import TEST, VAL, load_corpus
from dynplayer.eval.protocol import corpus_eval_set, embedding_scorer, evaluate_scorer
from dynplayer.train.config import TrainConfig
from dynplayer.train.loop import train_run
from dynplayer.train.sampling import build_training_data


def item2vec_vectors(indptr: np.ndarray, cols: np.ndarray, n_items: int, *, dim: int = 128,
                     window: int = 10, epochs: int = 5, seed: int = 0) -> np.ndarray:
    """gensim Word2Vec skip-gram over the training sequences; rows in vocabulary order
    (an item never seen gets a zero vector)."""
    from gensim.models import Word2Vec

    words = cols.astype(str)
    sentences = [list(words[indptr[i]:indptr[i + 1]]) for i in range(indptr.shape[0] - 1)]
    model = Word2Vec(sentences, vector_size=dim, window=window, sg=1, negative=5, min_count=1,
                     workers=min(2, os.cpu_count() or 1), epochs=epochs, seed=seed)
    out = np.zeros((n_items, dim), dtype=np.float32)
    for key, row in model.wv.key_to_index.items():
        out[int(key)] = model.wv.vectors[row]
    return out


def bench_training(corpus_dir: Path, out: Path, cfg: TrainConfig, *, item2vec: bool = True,
                   test: bool = False) -> dict[str, Any]:
    corpus = load_corpus(corpus_dir)
    result: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
                              "objective": cfg.objective, "init": cfg.init,
                              "epochs": cfg.epochs, "threads": cfg.threads,
                              "load_average_1m_before": round(os.getloadavg()[0], 1)}
    t0, c0 = time.perf_counter(), time.process_time()
    run = train_run(corpus_dir, out, cfg, progress=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    import json

    metrics = json.loads((run.path / "metrics.json").read_text())
    result.update({
        "train_wall_s": round(wall, 1), "train_cpu_s": round(cpu, 1),
        "train_loop_s": metrics["train_seconds"],
        "pairs_per_s": round(metrics["pairs_per_s"]),
        "playlists_per_s": round(metrics["playlists_per_s"]),
        "epochs_run": len(metrics["history"]),
        "val_recall@10": round(metrics["val_recall@10"], 4),
        "val_ndcg@10": round(metrics["val_ndcg@10"], 4),
    })
    splits = [("val", VAL)] + ([("test", TEST)] if test else [])
    if test:
        m = evaluate_scorer(embedding_scorer(run.vectors), corpus_eval_set(corpus, TEST))
        result.update({f"test_{k}": round(v, 4) for k, v in m.items()
                       if k.startswith(("recall", "ndcg", "coverage"))})
    if item2vec:
        data = build_training_data(corpus, window=cfg.window, neighbours=False)
        t0, c0 = time.perf_counter(), time.process_time()
        vec = item2vec_vectors(data.seq_indptr, data.seq_cols, data.n_items, dim=cfg.dim,
                               window=cfg.window)
        i2v_wall = time.perf_counter() - t0
        result["item2vec_wall_s"] = round(i2v_wall, 1)
        result["item2vec_cpu_s"] = round(time.process_time() - c0, 1)
        # Word2Vec trains each occurrence against up to 2 * window context words per epoch.
        result["item2vec_occurrences_per_s"] = round(data.n_occurrences * 5 / i2v_wall)
        for name, split in splits:
            m = evaluate_scorer(embedding_scorer(vec), corpus_eval_set(corpus, split), ks=(10,))
            result[f"item2vec_{name}_recall@10"] = round(m["recall@10"], 4)
            result[f"item2vec_{name}_ndcg@10"] = round(m["ndcg@10"], 4)
    return result


def synthetic_training_corpus(out: Path, n_playlists: int, n_tracks: int, seed: int = 0) -> Path:
    """A planted synthetic corpus at any scale, every track selected, split and held out with
    the data stage's own functions (neighbour counting is skipped: it does not change what the
    set objective trains on)."""
    from dynplayer.data.corpus import save_corpus
    from dynplayer.data.split import hold_out, split_playlists
    from dynplayer.data.synthetic import SyntheticSpec, generate

    corpus = generate(SyntheticSpec(n_playlists=n_playlists, n_tracks=n_tracks, seed=seed))
    corpus.selected = np.ones(corpus.n_tracks, dtype=bool)
    corpus.split = split_playlists(corpus.n_playlists, val_fraction=0.1, test_fraction=0.15,
                                   seed=seed)
    corpus.heldout = hold_out(corpus.occ_playlist, corpus.occ_track, corpus.split,
                              corpus.selected, fraction=0.5, seed=seed)
    corpus.manifest["counts"] = {"playlists": corpus.n_playlists,
                                 "occurrences": corpus.n_occurrences, "tracks": corpus.n_tracks}
    save_corpus(corpus, out)
    return out


def bench_scale(work: Path, cfg: TrainConfig, *, n_playlists: int, n_tracks: int) -> dict[str, Any]:
    """Time training epochs on a synthetic corpus of `n_playlists` (MPD scale: 1,000,000)."""
    import json

    import torch

    t0 = time.perf_counter()
    corpus_dir = work / f"corpus-{n_playlists}-{n_tracks}"
    if not (corpus_dir / "manifest.json").exists():  # reused by a second config
        synthetic_training_corpus(corpus_dir, n_playlists, n_tracks)
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    run = train_run(corpus_dir, work / "run", cfg, progress=False)
    wall = time.perf_counter() - t0
    metrics = json.loads((run.path / "metrics.json").read_text())
    hist = metrics["history"]
    return {
        "device": metrics["device"],
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__, "playlists": n_playlists,
        "train_playlists": metrics["n_train_playlists"],
        "occurrences_trained": metrics["n_train_occurrences"], "vocabulary": metrics["n_items"],
        "objective": cfg.objective, "set_softmax": metrics.get("set_softmax"),
        "set_negatives": cfg.set_negatives, "batch_size": cfg.batch_size, "dim": cfg.dim,
        "corpus_build_s": round(gen_s, 1), "train_run_wall_s": round(wall, 1),
        "epoch_s": [h["seconds"] for h in hist], "steps_per_epoch": hist[0]["steps"],
        "s_per_step": round(hist[0]["seconds"] / max(1, hist[0]["steps"]), 3),
        "pairs_per_s": round(metrics["pairs_per_s"]),
        "playlists_per_s": round(metrics["playlists_per_s"]),
        "val_recall@10": round(metrics["val_recall@10"], 4),
    }


REFERENCE_UNIFORMITY = {0.0: (0.2827, 0.1886), 0.5: (0.2871, 0.1919), 1.0: (0.2848, 0.1909)}


def uniformity_sweep(
    corpus_dir: Path,
    out: Path,
    values: list[float],
    sets: list[str],
    split: str,
    command: str,
    machine: str,
    *,
    log: Callable[[str], None] | None = None,
) -> str:
    """Train the pairwise objective at each uniformity weight, evaluate, and tabulate."""
    from dynplayer.eval.runner import EvalOptions, evaluate_run
    from dynplayer.train.config import load_train_config

    say = log or (lambda _m: None)
    rows = []
    cfg = ""
    for u in values:
        train_cfg = load_train_config(None, ["objective=pairwise", *sets, f"uniformity={u}"])
        run_dir = Path(out) / f"u{u:g}"
        t0 = time.perf_counter()
        say(f"training u={u:g} -> {run_dir}")
        train_run(corpus_dir, run_dir, train_cfg, log=say)
        train_s = time.perf_counter() - t0
        res = evaluate_run(run_dir, EvalOptions(peers=[], split=split, probe=False), log=say)
        m, h = res["methods"]["dynplayer"], res["hubness"]["dynplayer"]
        rows.append((u, m, h, train_s))
        cfg = ", ".join(f"{k}={v}" for k, v in res["run"]["config"].items() if k != "uniformity")
    lines = [
        f"Command: `{command}`. Machine: {machine}. Measured "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Training config of every row "
        f"except u: {cfg}; {split} split. Reference figures from the issue beside ours.", "",
        "| u | Recall@10 | ref Recall@10 | NDCG@10 | ref NDCG@10 | Recall@20 | NDCG@20 | "
        "coverage@10 | mean pairwise cos | k-occ skewness | anti-hubs | Spearman(pop, k-occ) | "
        "train s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for u, m, h, train_s in rows:
        ref = REFERENCE_UNIFORMITY.get(u)
        rn, rr = (f"{ref[0]:.4f}", f"{ref[1]:.4f}") if ref else ("-", "-")
        lines.append(
            f"| {u:g} | {m['recall@10']:.4f} | {rr} | {m['ndcg@10']:.4f} | {rn} | "
            f"{m['recall@20']:.4f} | {m['ndcg@20']:.4f} | {m['coverage@10']:.4f} | "
            f"{h['mean_pairwise_cosine']:.4f} | {h['k_occurrence_skewness']:.2f} | "
            f"{h['anti_hub_share']:.1%} | {h['popularity_k_occurrence_spearman']:.3f} | "
            f"{train_s:.0f} |")
    return "\n".join(lines) + "\n"
