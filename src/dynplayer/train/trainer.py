"""One member (one seed) of a run: the model, its optimizers, one step and one epoch with
validation Recall@10, best-epoch selection and early stopping.

Determinism: every epoch draws its batches from a generator seeded by (seed, member, epoch), and
the learning rate is a pure function of the step, so a run resumed from an epoch checkpoint
continues exactly as the uninterrupted run would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from dynplayer.eval.protocol import EvalSet, embedding_scorer, evaluate_scorer
from dynplayer.model.track import TrackEncoder
from dynplayer.train.checkpoint import TrainState
from dynplayer.train.config import TrainConfig, shared_parts
from dynplayer.train.distributed import Dist
from dynplayer.train.initialisation import svd_init
from dynplayer.train.objectives import Objective, resolved_optimizer
from dynplayer.train.sampling import TrainingData
from dynplayer.train.schedule import lr_at, planned_epochs, steps_per_epoch


class Trainer:
    """One member (one seed) of a run; the loop is `run_epoch` until `state.done`."""

    def __init__(self, cfg: TrainConfig, data: TrainingData, eval_set: EvalSet,
                 device: torch.device, dist_info: Dist, member: int) -> None:
        self.cfg, self.data, self.eval_set, self.device, self.dist = (
            cfg, data, eval_set, device, dist_info)
        self.member = member
        self.seed = cfg.seed + member
        torch.manual_seed(self.seed)
        self.part_names = [p for p in shared_parts(cfg) if data.parts and p in data.parts]
        self.optimizer_name = resolved_optimizer(cfg, data.n_items, dist_info.world)
        self.model = TrackEncoder(data.n_items, cfg.dim, temperature=cfg.temperature,
                                  learnable_temperature=cfg.learnable_temperature,
                                  sparse=self.optimizer_name == "sparse_adam",
                                  parts=[data.parts[p][0] for p in self.part_names]
                                  if data.parts else ()).to(device)
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
        if self.optimizer_name == "sparse_adam":
            self.optimizer = torch.optim.SparseAdam(
                [self.model.embedding.weight, *[e.weight for e in self.model.parts]], lr=cfg.lr)
            self.dense_optimizer: torch.optim.Optimizer | None = (
                torch.optim.Adam([self.model.logit_scale], lr=cfg.lr)
                if cfg.learnable_temperature else None)
        elif self.optimizer_name == "adam":
            self.optimizer = torch.optim.Adam(params, lr=cfg.lr)
            self.dense_optimizer = None
        else:
            self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
            self.dense_optimizer = None
        self.epochs, self.total_steps = planned_epochs(cfg, data)
        self.spe = steps_per_epoch(cfg, data)
        self.objective = Objective(cfg, data, self.model, self.net, dist_info, device)
        self.best_vectors: np.ndarray | None = None
        self.best_parts: list[np.ndarray] | None = None

    # ---- one step -----------------------------------------------------------------------
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
            terms, n_pairs = self.objective.terms(idx, rng)
            if cfg.objective != "pairwise":
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
                self.best_parts = self.part_vectors()
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

    def part_vectors(self) -> list[np.ndarray]:
        """The normalised rows of each shared part (`part_names` order)."""
        with torch.no_grad():
            return [self.model.part_table(i).detach().float().cpu().numpy().copy()
                    for i in range(len(self.model.parts))]

    # ---- checkpoint state -----------------------------------------------------------------
    state: TrainState

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "dense_optimizer": self.dense_optimizer.state_dict()
                if self.dense_optimizer is not None else None,
                "best_vectors": self.best_vectors, "best_parts": self.best_parts,
                "torch_rng": torch.get_rng_state()}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.model.load_state_dict(sd["model"])
        self.optimizer.load_state_dict(sd["optimizer"])
        if self.dense_optimizer is not None and sd.get("dense_optimizer") is not None:
            self.dense_optimizer.load_state_dict(sd["dense_optimizer"])
        self.best_vectors = sd["best_vectors"]
        self.best_parts = sd.get("best_parts")
        torch.set_rng_state(sd["torch_rng"])
