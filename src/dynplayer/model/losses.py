"""Training losses. They take features (L2-normalised vectors), never the model, and return a
dict of named terms whose "loss" entry is the one to minimise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    logit_scale: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    logq_anchors: torch.Tensor | None = None,
    logq_positives: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Symmetric InfoNCE over in-batch negatives.

    logits[i, j] = scale * <a_i, p_j>; pair i is the positive of row i and column i.
    loss = (CE(logits, diag) + CE(logits^T, diag)) / 2.
    mask[i, j] = True drops p_j as a negative of a_i (and a_i as one of p_j); the diagonal is
    never dropped. logq_* (log sampling probability of each column's item) is subtracted from
    the negatives' logits (the logQ correction of popularity-skewed in-batch negatives).
    """
    logits = logit_scale * anchors @ positives.T
    n = logits.shape[0]
    target = torch.arange(n, device=logits.device)
    fwd, bwd = logits, logits.T
    if logq_positives is not None:
        fwd = fwd - logq_positives[None, :]
    if logq_anchors is not None:
        bwd = bwd - logq_anchors[None, :]
    if mask is not None:
        off = mask & ~torch.eye(n, dtype=torch.bool, device=logits.device)
        fwd = fwd.masked_fill(off, float("-inf"))
        bwd = bwd.masked_fill(off.T, float("-inf"))
    loss_a = F.cross_entropy(fwd, target)
    loss_p = F.cross_entropy(bwd, target)
    loss = (loss_a + loss_p) / 2
    return {"loss": loss, "info_nce": loss.detach()}


def uniformity(x: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """log E[exp(-t ||x_i - x_j||^2)] over distinct pairs i < j of the rows of x."""
    if x.shape[0] < 2:
        return x.sum() * 0.0
    sq = torch.pdist(x, p=2).pow(2)
    return torch.logsumexp(-t * sq, dim=0) - torch.log(torch.tensor(float(sq.shape[0])))


def set_to_track(
    anchors: torch.Tensor,
    items: torch.Tensor,
    logit_scale: torch.Tensor,
    context_rows: torch.Tensor,
    context_cols: torch.Tensor,
    target_rows: torch.Tensor,
    target_cols: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Set-to-track softmax: each anchor (a playlist's pooled visible tracks) against every item.

    logits = scale * anchors @ items^T over the whole vocabulary, with the anchor's own
    (context) items masked; loss = mean over anchors of the mean over its targets of
    -log softmax(logits)[target]. Every anchor must have at least one target.
    """
    b = anchors.shape[0]
    logits = logit_scale * anchors @ items.T
    logits = logits.index_put((context_rows, context_cols),
                              torch.tensor(float("-inf"), device=logits.device))
    return _mean_target_nll(logits, target_rows, target_cols, b)


def sampled_set_to_track(
    anchors: torch.Tensor,
    candidates: torch.Tensor,
    logit_scale: torch.Tensor,
    candidate_logq: torch.Tensor,
    context_rows: torch.Tensor,
    context_pos: torch.Tensor,
    target_rows: torch.Tensor,
    target_pos: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Set-to-track softmax over a sampled candidate set instead of the whole vocabulary.

    `candidates` (C x d) are the distinct items of the step: the batch's targets plus sampled
    negatives; `candidate_logq[c]` is log pi_c, the probability that item c is in such a set.
    As in sampled softmax (Jean et al. 2015) and the in-batch correction of Yi et al. (RecSys
    2019), every candidate's logit, the target's included, is corrected by log pi (the log-Q
    correction): loss = -(s_t - log pi_t) + logsumexp_c(s_c - log pi_c), which estimates the
    full softmax without favouring items that are candidates often (popular targets). With
    every item a candidate (pi = 1) this is exactly `set_to_track`. context_pos / target_pos
    index into `candidates`; the anchor's own context candidates are masked. Cost is
    anchors x candidates, not anchors x vocabulary.
    """
    b = anchors.shape[0]
    logits = logit_scale * anchors @ candidates.T
    corrected = (logits - candidate_logq[None, :]).index_put(
        (context_rows, context_pos), torch.tensor(float("-inf"), device=logits.device))
    return _mean_target_nll(corrected, target_rows, target_pos, b)


def _mean_target_nll(logits: torch.Tensor, target_rows: torch.Tensor, target_cols: torch.Tensor,
                     b: int) -> dict[str, torch.Tensor]:
    """Mean over the b anchors of the mean over each anchor's targets of -log softmax(logits),
    the shared end of the full and the sampled set-to-track terms."""
    log_z = torch.logsumexp(logits, dim=1)
    logp = logits[target_rows, target_cols] - log_z[target_rows]
    n_t = torch.bincount(target_rows, minlength=b).clamp(min=1).to(logp.dtype)
    per_anchor = torch.zeros(b, dtype=logp.dtype, device=logp.device).index_add(
        0, target_rows, -logp) / n_t
    loss = per_anchor.mean()
    return {"loss": loss, "set_nce": loss.detach()}
