"""The training run: corpus -> members trained one after another (resumable from the last
checkpoint, optionally under `torchrun`) -> the ensemble's vectors, config and metrics in the
run directory. One member's epochs are in `trainer`, the loss terms in `objectives`."""

from __future__ import annotations

import gc
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from dynplayer.config import from_dict, to_dict
from dynplayer.data.corpus import VAL, Corpus, load_corpus
from dynplayer.errors import ConfigError
from dynplayer.eval.protocol import EvalSet, corpus_eval_set, embedding_scorer, evaluate_scorer
from dynplayer.run import Run, atomic_write_json, l2_normalize, load_run, save_parts, save_vectors
from dynplayer.train.checkpoint import TrainState, decisive, load_checkpoint, save_checkpoint
from dynplayer.train.config import TrainConfig, shared_parts, validate
from dynplayer.train.distributed import init_distributed, resolve_device
from dynplayer.train.objectives import resolved_optimizer, sampled_softmax
from dynplayer.train.sampling import build_training_data
from dynplayer.train.schedule import members
from dynplayer.train.trainer import Trainer


def _progress(total: int, disable: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="step", disable=disable, dynamic_ncols=True, leave=False,
                file=sys.stderr)


def train_run(corpus_dir: Path, out: Path, cfg: TrainConfig, *, full: bool = False,
              resume: bool = False, progress: bool | None = None,
              log: Callable[[str], None] | None = None) -> Run:
    """Train track embeddings on a prepared corpus and write the run directory `out`.

    `full` trains on every playlist except the validation ones (test included). With `resume`,
    an existing checkpoint in `out` (same config, corpus and `full`) is continued; the result is
    the same as an uninterrupted run. Returns the written run (vectors of the best epoch; with
    seeds > 1, the members' best vectors side by side: see `ensemble`).
    """
    from threadpoolctl import threadpool_limits

    # numpy's BLAS (SVD init, validation scoring) on one thread: on a shared machine its
    # spinning worker threads made the SVD 15x slower than one thread.
    with threadpool_limits(1, "blas"):
        return _train_run(corpus_dir, out, cfg, full=full, resume=resume, progress=progress,
                          log=log)


def _train_run(corpus_dir: Path, out: Path, cfg: TrainConfig, *, full: bool,
               resume: bool, progress: bool | None,
               log: Callable[[str], None] | None) -> Run:
    cfg = validate(cfg)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    corpus_dir = Path(corpus_dir).resolve()
    out = Path(out)
    corpus = load_corpus(corpus_dir)
    corpus.require_split()
    dist_info = init_distributed(cfg.device)
    device = resolve_device(cfg.device, dist_info)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 matmuls: the logits need no more
    data = build_training_data(corpus, full=full, window=cfg.window,
                               neighbours=cfg.mask_false_negatives
                               and cfg.objective in ("pairwise", "mix"))
    eval_set = corpus_eval_set(corpus, VAL)
    n_eval = cfg.eval_playlists
    if cfg.eval_scores > 0:
        n_eval = min(n_eval, max(500, cfg.eval_scores // max(data.n_items, 1)))
    if n_eval > 0 and eval_set.n > n_eval:
        keep = slice(0, n_eval)
        eval_set = EvalSet(visible=eval_set.visible[keep], heldout=eval_set.heldout[keep],
                           pids=eval_set.pids[keep], skipped=eval_set.skipped)
    meta = {"corpus_dir": str(corpus_dir), "corpus_hash": corpus.manifest.get("content_hash"),
            "full": full, "world_size": dist_info.world}
    # training needs only the vocabulary's ids from here on: the corpus' per-track and
    # per-playlist lists (a third of the stage's memory at 250k playlists) go now
    ids = [corpus.track_ids[t] for t in corpus.vocab()]
    del corpus
    show = progress if progress is not None else sys.stderr.isatty()
    say = log if log is not None else (lambda msg: None)

    state = TrainState()
    member_vectors: list[np.ndarray] = []
    member_parts: list[list[np.ndarray]] = []
    ckpt = load_checkpoint(out) if resume else None
    if ckpt is not None:
        if decisive(ckpt["config"]) != decisive(to_dict(cfg)) or {k: ckpt["meta"].get(k) for k in
                                              ("corpus_hash", "full")} != {
                k: meta[k] for k in ("corpus_hash", "full")}:
            raise ConfigError(f"{out}: the checkpoint was made with a different config, corpus "
                              "or --full; train into a new directory or drop --resume")
        state = TrainState(**ckpt["state"])
        member_vectors = list(ckpt["member_vectors"])
        member_parts = [list(p) for p in ckpt.get("member_parts", [])]
        say(f"resuming member {state.member} after epoch {state.epoch}")
    if dist_info.main:
        out.mkdir(parents=True, exist_ok=True)

    wall0 = time.perf_counter()
    n_members = members(cfg, data.n_playlists)
    if n_members < cfg.seeds:
        say(f"training one member, not {cfg.seeds}: {data.n_playlists:,} training playlists "
            f">= ensemble_below ({cfg.ensemble_below:,}); --set ensemble_below=0 trains all")
    while state.member < n_members:
        trainer = Trainer(cfg, data, eval_set, device, dist_info, state.member)
        trainer.state = state
        if ckpt is not None and ckpt["trainer"] is not None:
            trainer.load_state_dict(ckpt["trainer"])
        ckpt = None
        bar = _progress(trainer.total_steps, disable=not (show and dist_info.main))
        bar.update(state.step)
        t_last = time.perf_counter()

        def tick(values: dict[str, float], n_pairs: int, bar: Any = bar) -> None:
            nonlocal t_last
            now = time.perf_counter()
            rate = n_pairs * dist_info.world / max(now - t_last, 1e-9)
            t_last = now
            bar.set_postfix({**{k: f"{v:.4f}" for k, v in values.items()},
                             "pairs/s": f"{rate:,.0f}"}, refresh=False)
            bar.update(1)

        while not state.done:
            record = trainer.run_epoch(tick)
            if "val_recall@10" in record:
                say(f"member {state.member} epoch {record['epoch']}: loss {record['loss']:.4f} "
                    f"val recall@10 {record['val_recall@10']:.4f} "
                    f"ndcg@10 {record['val_ndcg@10']:.4f}")
            if dist_info.main and (state.epoch % cfg.checkpoint_every == 0 or state.done):
                save_checkpoint(out, cfg, meta, trainer.state_dict(), state, member_vectors,
                                member_parts)
        bar.close()
        best = trainer.best_vectors if trainer.best_vectors is not None else trainer.vectors()
        member_vectors.append(best)
        member_parts.append(trainer.best_parts if trainer.best_parts is not None
                            else trainer.part_vectors())
        state.members.append({"seed": trainer.seed, "best_epoch": state.best_epoch,
                              "val_recall@10": state.best_recall,
                              "val_ndcg@10": state.best_ndcg, "epochs": state.epoch,
                              "steps": state.step})
        state = TrainState(member=state.member + 1, history=state.history,
                           members=state.members, train_seconds=state.train_seconds,
                           pairs=state.pairs, playlists=state.playlists)
        if dist_info.main:
            save_checkpoint(out, cfg, meta, None, state, member_vectors, member_parts)
        # the next member's model, optimiser and SVD start are built after this one's are
        # gone: at 1M playlists (1.98M tracks) the two side by side peaked at 16.0 GiB
        del trainer, best, bar, tick
        gc.collect()

    vectors = ensemble(member_vectors)
    final = evaluate_scorer(embedding_scorer(vectors), eval_set, ks=(10,))
    metrics = {
        "val_recall@10": final["recall@10"], "val_ndcg@10": final["ndcg@10"],
        "members": state.members, "history": state.history,
        "train_seconds": round(state.train_seconds, 3),
        "wall_seconds_this_process": round(time.perf_counter() - wall0, 3),
        "pairs": state.pairs, "pairs_per_s": state.pairs / max(state.train_seconds, 1e-9),
        "playlists_per_s": state.playlists / max(state.train_seconds, 1e-9),
        "n_items": data.n_items, "n_train_playlists": data.n_playlists,
        "n_train_occurrences": data.n_occurrences, "device": str(device),
        "world_size": dist_info.world,
        "set_softmax": "sampled" if sampled_softmax(cfg, data.n_items) else "full",
        "optimizer": resolved_optimizer(cfg, data.n_items, dist_info.world),
    }
    names = [p for p in shared_parts(cfg) if data.parts and p in data.parts]
    metrics["shared"] = names
    if dist_info.main:
        save_vectors(out, vectors, ids)
        save_parts(out, {name: (ensemble([m[i] for m in member_parts]),
                                data.parts[name][1] if data.parts else [])
                         for i, name in enumerate(names)})
        atomic_write_json(out / "config.json", {**meta, "train": to_dict(cfg)})
        atomic_write_json(out / "metrics.json", metrics)
    if dist_info.world > 1:
        dist.barrier()
    return load_run(out) if dist_info.main else Run(path=out, vectors=vectors, ids=ids,
                                                     config={**meta, "train": to_dict(cfg)})


def ensemble(member_vectors: list[np.ndarray]) -> np.ndarray:
    """One table from several seeds: the members' normalised vectors side by side, scaled by
    1/sqrt(n) and renormalised. Independently trained tables are arbitrarily rotated against
    each other, so averaging them would mix unrelated axes; concatenating keeps each member's
    geometry, and the cosine of a mean-pooled playlist with a track is close to the mean of the
    members' cosines."""
    if len(member_vectors) == 1:
        return l2_normalize(member_vectors[0])
    scale = 1.0 / math.sqrt(len(member_vectors))
    return l2_normalize(np.concatenate([l2_normalize(v) * scale for v in member_vectors], axis=1))


def config_of_run(run: Run) -> TrainConfig:
    """The TrainConfig a run was trained with."""
    return from_dict(TrainConfig, run.config.get("train", {}))


def load_training_corpus(corpus_dir: Path) -> Corpus:
    corpus = load_corpus(corpus_dir)
    corpus.require_split()
    return corpus
