"""The training objectives of one step: set-to-track (the default's main term), pairwise
InfoNCE, their mix, and the uniformity term; each returns the named loss terms of a batch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dynplayer.model.losses import info_nce, sampled_set_to_track, set_to_track, uniformity
from dynplayer.model.track import TrackEncoder
from dynplayer.train.config import TrainConfig
from dynplayer.train.distributed import Dist
from dynplayer.train.sampling import (
    PairBatch,
    SetBatch,
    TrainingData,
    pair_batch,
    set_batch,
    set_candidates,
)

UNIFORMITY_SAMPLE = 2048  # items per step in the uniformity term (pdist is quadratic)


def sampled_softmax(cfg: TrainConfig, n_items: int) -> bool:
    """Whether the set term scores sampled candidates instead of the whole vocabulary
    ("auto": when the vocabulary has more than `sampled_above` items)."""
    if cfg.set_softmax == "auto":
        return n_items > cfg.sampled_above
    return cfg.set_softmax == "sampled"


def resolved_optimizer(cfg: TrainConfig, n_items: int, world: int = 1) -> str:
    """The optimizer a run of `n_items` tracks uses: `cfg.optimizer`, or for "auto" sparse
    Adam when the vocabulary is over `sparse_above`, every step scores sampled rows and one
    process trains (`world` 1: NCCL, DDP's GPU backend, has no sparse all-reduce), else AdamW
    (`TrainConfig.optimizer`)."""
    if cfg.optimizer != "auto":
        return cfg.optimizer
    sampled = cfg.objective == "pairwise" or sampled_softmax(cfg, n_items)
    return ("sparse_adam" if sampled and n_items > cfg.sparse_above and world == 1
            else "adamw")


class RowTable:
    """The normalised vectors of the vocabulary rows one step touches (sorted `rows`),
    indexed by vocabulary row like the whole table."""

    def __init__(self, rows: torch.Tensor, vectors: torch.Tensor) -> None:
        self.rows, self.vectors = rows, vectors

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        return self.vectors[torch.searchsorted(self.rows, idx)]


@dataclass
class Objective:
    """The loss of one step for `cfg.objective`, on this process's share of the batch."""

    cfg: TrainConfig
    data: TrainingData
    model: TrackEncoder
    net: torch.nn.Module  # the model, or its DistributedDataParallel wrapper
    dist: Dist
    device: torch.device

    def __post_init__(self) -> None:
        self.logq = torch.as_tensor(self.data.item_logq, dtype=torch.float32,
                                    device=self.device)
        self.sampled = sampled_softmax(self.cfg, self.data.n_items)

    def terms(self, idx: np.ndarray, rng: np.random.Generator
              ) -> tuple[dict[str, torch.Tensor], int]:
        """Loss terms and the number of positive pairs for one batch: `idx` are occurrences
        (objective "pairwise") or playlists ("set", "mix")."""
        cfg = self.cfg
        if cfg.objective == "pairwise":
            return self._pair_terms(idx, rng)
        if self.sampled:
            return self._sampled_terms(idx, rng)
        table = self.net(None)
        terms, n_pairs = self._set_terms(idx, rng, table)
        if cfg.objective == "mix":
            occ = rng.integers(0, self.data.n_occurrences, cfg.pairwise_batch)
            pterms, p_pairs = self._pair_terms(occ, rng, table)
            terms, n_pairs = self._mix(terms, pterms), n_pairs + p_pairs
        return terms, n_pairs

    def _mix(self, terms: dict[str, torch.Tensor],
             pterms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        merged = {**terms, **{k: v for k, v in pterms.items() if k != "loss"}}
        merged["loss"] = terms["loss"] + self.cfg.mix_weight * pterms["loss"]
        return merged

    def _share(self, b: SetBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        """This process's playlists of a set batch (every other one under DDP), renumbered."""
        ctx_rows, ctx_cols, tgt_rows, tgt_cols, n = (
            b.context_rows, b.context_cols, b.target_rows, b.target_cols, b.n)
        if self.dist.world > 1:
            mine = np.arange(n) % self.dist.world == self.dist.rank
            new_row = np.cumsum(mine) - 1
            keep_c, keep_t = mine[ctx_rows], mine[tgt_rows]
            ctx_rows, ctx_cols = new_row[ctx_rows[keep_c]], ctx_cols[keep_c]
            tgt_rows, tgt_cols = new_row[tgt_rows[keep_t]], tgt_cols[keep_t]
            n = int(mine.sum())
        return ctx_rows, ctx_cols, tgt_rows, tgt_cols, n

    def _sampled_terms(self, playlists: np.ndarray, rng: np.random.Generator
                       ) -> tuple[dict[str, torch.Tensor], int]:
        """The sampled set term (plus the pair term of "mix"). Everything the step scores is
        drawn first, then one forward normalises only the rows it touches: the whole table's
        normalisation and the gathers' V x dim backward took half of a step at 111k items."""
        cfg = self.cfg
        b = set_batch(self.data, playlists, rng, cfg.subset_min, cfg.subset_max, cfg.prefix)
        # Candidates come from the whole batch, before the ranks split it, so every rank scores
        # the same candidate set and N processes compute the loss of one.
        cand = set_candidates(self.data, b, rng, cfg.set_negatives)
        ctx_rows, ctx_cols, tgt_rows, tgt_cols, n = self._share(b)
        parts = [cand.items, ctx_cols]
        uni = None
        if cfg.uniformity > 0:
            uni = np.unique(np.r_[ctx_cols, tgt_cols])
            if uni.shape[0] > UNIFORMITY_SAMPLE:
                uni = rng.choice(uni, UNIFORMITY_SAMPLE, replace=False)
            parts.append(uni)
        pb = None
        if cfg.objective == "mix":
            occ = rng.integers(0, self.data.n_occurrences, cfg.pairwise_batch)
            pb = pair_batch(self.data, occ, rng, cfg.window,
                            mask_false_negatives=cfg.mask_false_negatives)
            parts += [pb.anchors, pb.positives]
        rows = np.unique(np.concatenate(parts))
        table = RowTable(self._t(rows), self.net(self._t(rows)))
        ctx_pos, found = cand.positions(ctx_cols)  # context items that are no candidate
        tgt_pos, _ = cand.positions(tgt_cols)  # need no mask; targets always are
        anchors = TrackEncoder.pool(table[self._t(ctx_cols)], self._t(ctx_rows), n)
        terms = sampled_set_to_track(
            anchors, table[self._t(cand.items)], self.model.scale(),
            torch.as_tensor(cand.logq, device=self.device), self._t(ctx_rows[found]),
            self._t(ctx_pos[found]), self._t(tgt_rows), self._t(tgt_pos))
        if uni is not None:
            terms = self._add_uniformity(terms, table[self._t(uni)])
        n_pairs = int(tgt_rows.shape[0])
        if pb is not None:
            pterms, p_pairs = self._pair_loss(pb, table)
            terms, n_pairs = self._mix(terms, pterms), n_pairs + p_pairs
        return terms, n_pairs

    def _t(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.long, device=self.device)

    def _set_terms(self, playlists: np.ndarray, rng: np.random.Generator,
                   table: torch.Tensor) -> tuple[dict[str, torch.Tensor], int]:
        cfg = self.cfg
        b = set_batch(self.data, playlists, rng, cfg.subset_min, cfg.subset_max, cfg.prefix)
        # Every rank draws the whole batch (same rng), then keeps its share of the playlists, so
        # N processes see exactly the sample of one.
        ctx_rows, ctx_cols, tgt_rows, tgt_cols, n = self._share(b)
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
        return self._pair_loss(b, table)

    def _pair_loss(self, b: PairBatch, table: torch.Tensor | RowTable | None
                   ) -> tuple[dict[str, torch.Tensor], int]:
        cfg = self.cfg
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
