"""The training loop: seeded batches, AdamW/SparseAdam with warm-up + cosine decay, validation
Recall@10 per epoch with best-epoch selection and early stopping, atomic checkpoints and resume,
optional DistributedDataParallel under `torchrun`.

Determinism: every epoch draws its batches from a generator seeded by (seed, member, epoch), and
the learning rate is a pure function of the step, so a run resumed from an epoch checkpoint
continues exactly as the uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from dynplayer.config import from_dict, to_dict
from dynplayer.data.corpus import VAL, Corpus, load_corpus
from dynplayer.errors import ArtifactError, ConfigError
from dynplayer.eval.protocol import EvalSet, corpus_eval_set, embedding_scorer, evaluate_scorer
from dynplayer.model.losses import info_nce, set_to_track, uniformity
from dynplayer.model.track import TrackEncoder
from dynplayer.run import (
    Run,
    atomic_write_bytes,
    atomic_write_json,
    l2_normalize,
    load_run,
    save_vectors,
)
from dynplayer.train.config import TrainConfig, validate
from dynplayer.train.sampling import TrainingData, build_training_data, pair_batch, set_batch

UNIFORMITY_SAMPLE = 2048  # items per step in the uniformity term (pdist is quadratic)


@dataclass
class TrainState:
    """Where a run stands; saved in every checkpoint."""

    member: int = 0  # which seed of an ensemble is training
    epoch: int = 0  # epochs completed by this member
    step: int = 0
    best_recall: float = -1.0
    best_ndcg: float = 0.0
    best_epoch: int = 0
    bad_evals: int = 0
    done: bool = False  # this member stopped (early stop or last epoch)
    history: list[dict[str, Any]] = field(default_factory=list)
    members: list[dict[str, Any]] = field(default_factory=list)  # finished members' summaries
    train_seconds: float = 0.0
    pairs: int = 0
    playlists: int = 0


@dataclass
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, dist_info: Dist | None = None) -> torch.device:
    """"auto" is CUDA when present, else CPU; under torchrun each rank takes its local GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' requested but no CUDA device is available")
        local = int(os.environ.get("LOCAL_RANK", "0"))
        return torch.device("cuda", local if dist_info and dist_info.world > 1 else 0)
    return torch.device("cpu")


def _init_distributed(device_name: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        use_cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Dist(rank=dist.get_rank(), world=dist.get_world_size())


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """Linear warm-up over `warmup` of the steps, then cosine decay to lr * lr_min."""
    warm = int(cfg.warmup * total)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return cfg.lr * (cfg.lr_min + (1 - cfg.lr_min) * 0.5 * (1 + math.cos(math.pi * progress)))


def steps_per_epoch(cfg: TrainConfig, data: TrainingData) -> int:
    n = data.n_occurrences if cfg.objective == "pairwise" else data.n_playlists
    return max(1, math.ceil(n / cfg.batch_size))


def planned_epochs(cfg: TrainConfig, data: TrainingData) -> tuple[int, int]:
    """(epochs, total steps) of one member."""
    spe = steps_per_epoch(cfg, data)
    if cfg.steps > 0:
        return math.ceil(cfg.steps / spe), cfg.steps
    return cfg.epochs, cfg.epochs * spe


def svd_init(data: TrainingData, dim: int, seed: int, n_iter: int = 4) -> np.ndarray:
    """Item factors V_k S_k^(1/2) of the playlist x item matrix with columns scaled by
    popularity^(-1/2) (so dot products of the rows approximate item-item cosine similarity),
    rows L2-normalised. A randomized SVD (Halko et al., `n_iter` power iterations) in float32:
    ARPACK took minutes on the MPD corpus, this takes seconds."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):
        return _svd_init(data, dim, seed, n_iter)


def _svd_init(data: TrainingData, dim: int, seed: int, n_iter: int) -> np.ndarray:
    import scipy.sparse as sp

    rows = np.repeat(np.arange(data.n_playlists), np.diff(data.set_indptr))
    pop = np.bincount(data.set_cols, minlength=data.n_items).astype(np.float32)
    vals = (1.0 / np.sqrt(np.maximum(pop, 1.0)))[data.set_cols].astype(np.float32)
    x = sp.csr_matrix((vals, (rows, data.set_cols)), shape=(data.n_playlists, data.n_items))
    xt = x.T.tocsr()
    rng = np.random.default_rng(seed)
    k = min(dim, min(x.shape))
    width = min(k + 10, min(x.shape))
    q, _ = np.linalg.qr(x @ rng.standard_normal((data.n_items, width)).astype(np.float32))
    for _ in range(n_iter):
        z, _ = np.linalg.qr(xt @ q)
        q, _ = np.linalg.qr(x @ z)
    _, s, vt = np.linalg.svd((xt @ q).T, full_matrices=False)
    out = rng.normal(0, 1e-3, (data.n_items, dim)).astype(np.float32)
    out[:, :k] = vt[:k].T * np.sqrt(s[:k])[None, :]
    return l2_normalize(out)


class Trainer:
    """One member (one seed) of a run; the loop is `run_epoch` until `state.done`."""

    def __init__(self, cfg: TrainConfig, data: TrainingData, eval_set: EvalSet,
                 device: torch.device, dist_info: Dist, member: int) -> None:
        self.cfg, self.data, self.eval_set, self.device, self.dist = (
            cfg, data, eval_set, device, dist_info)
        self.member = member
        self.seed = cfg.seed + member
        torch.manual_seed(self.seed)
        self.model = TrackEncoder(data.n_items, cfg.dim, temperature=cfg.temperature,
                                  learnable_temperature=cfg.learnable_temperature,
                                  sparse=cfg.sparse).to(device)
        if cfg.init == "svd":
            with torch.no_grad():
                self.model.embedding.weight.copy_(torch.as_tensor(
                    svd_init(data, cfg.dim, self.seed), device=device))
        self.net: torch.nn.Module = self.model
        if dist_info.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer: torch.optim.Optimizer
        if cfg.optimizer == "sparse_adam":
            self.optimizer = torch.optim.SparseAdam([self.model.embedding.weight], lr=cfg.lr)
            self.dense_optimizer: torch.optim.Optimizer | None = (
                torch.optim.Adam([self.model.logit_scale], lr=cfg.lr)
                if cfg.learnable_temperature else None)
        elif cfg.optimizer == "adam":
            self.optimizer = torch.optim.Adam(params, lr=cfg.lr)
            self.dense_optimizer = None
        else:
            self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
            self.dense_optimizer = None
        self.epochs, self.total_steps = planned_epochs(cfg, data)
        self.spe = steps_per_epoch(cfg, data)
        self.logq = torch.as_tensor(data.item_logq, dtype=torch.float32, device=device)
        self.best_vectors: np.ndarray | None = None

    # ---- one step -----------------------------------------------------------------------
    def _t(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.long, device=self.device)

    def _set_terms(self, playlists: np.ndarray, rng: np.random.Generator,
                   table: torch.Tensor) -> tuple[dict[str, torch.Tensor], int]:
        cfg = self.cfg
        b = set_batch(self.data, playlists, rng, cfg.subset_min, cfg.subset_max)
        # Every rank draws the whole batch (same rng), then keeps its share of the playlists, so
        # N processes see exactly the sample of one.
        ctx_rows, ctx_cols, tgt_rows, tgt_cols, n = (
            b.context_rows, b.context_cols, b.target_rows, b.target_cols, b.n)
        if self.dist.world > 1:
            mine = np.arange(n) % self.dist.world == self.dist.rank
            new_row = np.cumsum(mine) - 1
            keep_c, keep_t = mine[ctx_rows], mine[tgt_rows]
            ctx_rows, ctx_cols = new_row[ctx_rows[keep_c]], ctx_cols[keep_c]
            tgt_rows, tgt_cols = new_row[tgt_rows[keep_t]], tgt_cols[keep_t]
            n = int(mine.sum())
        anchors = TrackEncoder.pool(table[self._t(ctx_cols)], self._t(ctx_rows), n)
        terms = set_to_track(anchors, table, self.model.scale(), self._t(ctx_rows),
                             self._t(ctx_cols), self._t(tgt_rows), self._t(tgt_cols))
        if cfg.uniformity > 0:
            items = np.unique(np.r_[ctx_cols, tgt_cols])
            if items.shape[0] > UNIFORMITY_SAMPLE:
                items = rng.choice(items, UNIFORMITY_SAMPLE, replace=False)
            terms = self._add_uniformity(terms, table[self._t(items)])
        return terms, int(tgt_rows.shape[0])

    def _pair_terms(self, occurrences: np.ndarray, rng: np.random.Generator,
                    table: torch.Tensor | None = None) -> tuple[dict[str, torch.Tensor], int]:
        """Pairwise InfoNCE. Alone (objective "pairwise") each process takes every other pair
        and its in-batch negatives are its own; inside "mix" (`table` given, one forward per
        step as DDP requires) every process computes the same whole pair batch, so the averaged
        gradient is the single-process one."""
        cfg = self.cfg
        if self.dist.world > 1 and table is None:
            occurrences = occurrences[self.dist.rank::self.dist.world]
        b = pair_batch(self.data, occurrences, rng, cfg.window,
                       mask_false_negatives=cfg.mask_false_negatives)
        a_t, p_t = self._t(b.anchors), self._t(b.positives)
        both = torch.cat([a_t, p_t])
        vecs = table[both] if table is not None else self.net(both)
        a, p = vecs[: a_t.shape[0]], vecs[a_t.shape[0]:]
        mask = torch.as_tensor(b.mask, device=self.device) if b.mask is not None else None
        terms = info_nce(a, p, self.model.scale(), mask=mask,
                         logq_anchors=self.logq[a_t] if cfg.logq else None,
                         logq_positives=self.logq[p_t] if cfg.logq else None)
        if cfg.uniformity > 0:
            terms = self._add_uniformity(terms, torch.cat([a, p])[:UNIFORMITY_SAMPLE])
        replicated = table is not None and self.dist.world > 1
        return terms, int(a_t.shape[0]) // (self.dist.world if replicated else 1)

    def _add_uniformity(self, terms: dict[str, torch.Tensor],
                        x: torch.Tensor) -> dict[str, torch.Tensor]:
        u = uniformity(x, self.cfg.uniformity_t)
        out = dict(terms)
        out["uniformity"] = u.detach()
        out["loss"] = terms["loss"] + self.cfg.uniformity * u
        return out

    def _step(self, terms: dict[str, torch.Tensor]) -> None:
        lr = lr_at(self.cfg, self.state.step, self.total_steps)
        for opt in (self.optimizer, self.dense_optimizer):
            if opt is None:
                continue
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
        terms["loss"].backward()  # type: ignore[no-untyped-call]
        self.optimizer.step()
        if self.dense_optimizer is not None:
            self.dense_optimizer.step()
        self.state.step += 1

    # ---- one epoch ----------------------------------------------------------------------
    def run_epoch(self, tick: Callable[[dict[str, float], int], None]) -> dict[str, Any]:
        cfg, st = self.cfg, self.state
        rng = np.random.default_rng([cfg.seed, self.member, st.epoch])
        t0 = time.perf_counter()
        sums: dict[str, float] = {}
        n_steps = 0
        pairs = 0
        if cfg.objective == "pairwise":
            order = rng.permutation(self.data.n_occurrences)
        else:
            order = rng.permutation(self.data.n_playlists)
        for start in range(0, order.shape[0], cfg.batch_size):
            if st.step >= self.total_steps:
                break
            idx = order[start:start + cfg.batch_size]
            if cfg.objective == "pairwise":
                terms, n_pairs = self._pair_terms(idx, rng)
            else:
                table = self.net(None)
                terms, n_pairs = self._set_terms(idx, rng, table)
                if cfg.objective == "mix":
                    occ = rng.integers(0, self.data.n_occurrences, cfg.pairwise_batch)
                    pterms, p_pairs = self._pair_terms(occ, rng, table)
                    merged = {**terms, **{k: v for k, v in pterms.items() if k != "loss"}}
                    merged["loss"] = terms["loss"] + cfg.mix_weight * pterms["loss"]
                    terms, n_pairs = merged, n_pairs + p_pairs
                st.playlists += int(idx.shape[0])
            self._step(terms)
            pairs += n_pairs
            n_steps += 1
            values = {k: float(v.detach()) for k, v in terms.items()}
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            tick(values, n_pairs)
        if self.dist.world > 1:  # log the loss of the whole batch, as one process would
            keys = sorted(sums)
            tot = torch.tensor([sums[k] for k in keys] + [float(pairs)], dtype=torch.float64,
                               device=self.device)
            dist.all_reduce(tot)
            sums = {k: float(tot[i]) / self.dist.world for i, k in enumerate(keys)}
            pairs = int(tot[-1])
        seconds = time.perf_counter() - t0
        st.epoch += 1
        st.train_seconds += seconds
        st.pairs += pairs
        record: dict[str, Any] = {"member": self.member, "epoch": st.epoch, "steps": st.step,
                                  "seconds": round(seconds, 3)}
        record.update({k: v / max(1, n_steps) for k, v in sums.items()})
        record["temperature"] = float(1.0 / self.model.scale().detach())
        last = st.epoch >= self.epochs or st.step >= self.total_steps
        if st.epoch % cfg.eval_every == 0 or last:
            vectors = self.vectors()
            m = evaluate_scorer(embedding_scorer(vectors), self.eval_set, ks=(10,))
            record["val_recall@10"], record["val_ndcg@10"] = m["recall@10"], m["ndcg@10"]
            if m["recall@10"] > st.best_recall:
                st.best_recall, st.best_ndcg, st.best_epoch = (
                    m["recall@10"], m["ndcg@10"], st.epoch)
                st.bad_evals = 0
                self.best_vectors = vectors
            else:
                st.bad_evals += 1
            if st.bad_evals >= cfg.patience:
                st.done = True
                record["early_stop"] = True
        if last:
            st.done = True
        st.history.append(record)
        return record

    def vectors(self) -> np.ndarray:
        with torch.no_grad():
            return self.model.table().detach().float().cpu().numpy().copy()

    # ---- checkpoint state -----------------------------------------------------------------
    state: TrainState

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "dense_optimizer": self.dense_optimizer.state_dict()
                if self.dense_optimizer is not None else None,
                "best_vectors": self.best_vectors, "torch_rng": torch.get_rng_state()}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.model.load_state_dict(sd["model"])
        self.optimizer.load_state_dict(sd["optimizer"])
        if self.dense_optimizer is not None and sd.get("dense_optimizer") is not None:
            self.dense_optimizer.load_state_dict(sd["dense_optimizer"])
        self.best_vectors = sd["best_vectors"]
        torch.set_rng_state(sd["torch_rng"])


# ---- the run ---------------------------------------------------------------------------------


def _progress(total: int, disable: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="step", disable=disable, dynamic_ncols=True, leave=False,
                file=sys.stderr)


def _checkpoint_path(out: Path) -> Path:
    return out / "checkpoint.pt"


def _save_checkpoint(out: Path, cfg: TrainConfig, meta: dict[str, Any], trainer: Trainer | None,
                     state: TrainState, member_vectors: list[np.ndarray]) -> None:
    """Model + optimizer + RNG + state + resolved config, written to a temp file and renamed.
    `trainer` is None between ensemble members (the next member starts fresh)."""
    buf = io.BytesIO()
    torch.save({"config": to_dict(cfg), "meta": meta, "state": dataclasses.asdict(state),
                "trainer": trainer.state_dict() if trainer is not None else None,
                "member_vectors": member_vectors}, buf)
    atomic_write_bytes(_checkpoint_path(out), buf.getvalue())


def _load_checkpoint(out: Path) -> dict[str, Any] | None:
    path = _checkpoint_path(out)
    if not path.exists():
        return None
    try:
        ckpt: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated file cannot happen (atomic), a foreign one can
        raise ArtifactError(f"{path}: unreadable checkpoint ({exc})") from exc
    return ckpt


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


RUNTIME_KEYS = ("device", "threads")  # may change on resume: where, not what, is trained


def _decisive(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in RUNTIME_KEYS}


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
    dist_info = _init_distributed(cfg.device)
    device = resolve_device(cfg.device, dist_info)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 matmuls: the logits need no more
    data = build_training_data(corpus, full=full, window=cfg.window,
                               neighbours=cfg.mask_false_negatives
                               and cfg.objective in ("pairwise", "mix"))
    eval_set = corpus_eval_set(corpus, VAL)
    if cfg.eval_playlists > 0 and eval_set.n > cfg.eval_playlists:
        keep = slice(0, cfg.eval_playlists)
        eval_set = EvalSet(visible=eval_set.visible[keep], heldout=eval_set.heldout[keep],
                           pids=eval_set.pids[keep], skipped=eval_set.skipped)
    meta = {"corpus_dir": str(corpus_dir), "corpus_hash": corpus.manifest.get("content_hash"),
            "full": full, "world_size": dist_info.world}
    show = progress if progress is not None else sys.stderr.isatty()
    say = log if log is not None else (lambda msg: None)

    state = TrainState()
    member_vectors: list[np.ndarray] = []
    ckpt = _load_checkpoint(out) if resume else None
    if ckpt is not None:
        if _decisive(ckpt["config"]) != _decisive(to_dict(cfg)) or {k: ckpt["meta"].get(k) for k in
                                              ("corpus_hash", "full")} != {
                k: meta[k] for k in ("corpus_hash", "full")}:
            raise ConfigError(f"{out}: the checkpoint was made with a different config, corpus "
                              "or --full; train into a new directory or drop --resume")
        state = TrainState(**ckpt["state"])
        member_vectors = list(ckpt["member_vectors"])
        say(f"resuming member {state.member} after epoch {state.epoch}")
    if dist_info.main:
        out.mkdir(parents=True, exist_ok=True)

    wall0 = time.perf_counter()
    while state.member < cfg.seeds:
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
                _save_checkpoint(out, cfg, meta, trainer, state, member_vectors)
        bar.close()
        best = trainer.best_vectors if trainer.best_vectors is not None else trainer.vectors()
        member_vectors.append(best)
        state.members.append({"seed": trainer.seed, "best_epoch": state.best_epoch,
                              "val_recall@10": state.best_recall,
                              "val_ndcg@10": state.best_ndcg, "epochs": state.epoch,
                              "steps": state.step})
        state = TrainState(member=state.member + 1, history=state.history,
                           members=state.members, train_seconds=state.train_seconds,
                           pairs=state.pairs, playlists=state.playlists)
        if dist_info.main:
            _save_checkpoint(out, cfg, meta, None, state, member_vectors)

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
    }
    ids = [corpus.track_ids[t] for t in corpus.vocab()]
    if dist_info.main:
        save_vectors(out, vectors, ids)
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
