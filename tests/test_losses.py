"""The training losses against values worked out by hand on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from dynplayer.model.losses import info_nce, sampled_set_to_track, set_to_track, uniformity

L = math.log(1 + math.exp(-1))  # -log softmax of the right answer in logits [1, 0]


def test_info_nce_identity_pairs() -> None:
    eye = torch.eye(2)
    terms = info_nce(eye, eye, torch.tensor(1.0))
    assert terms["loss"].item() == pytest.approx(L, abs=1e-6)
    assert set(terms) == {"loss", "info_nce"}


def test_info_nce_scale_sharpens() -> None:
    eye = torch.eye(2)
    # logits [10, 0]: -log(e^10 / (e^10 + 1))
    assert info_nce(eye, eye, torch.tensor(10.0))["loss"].item() == pytest.approx(
        math.log(1 + math.exp(-10)), abs=1e-7)


def test_info_nce_false_negative_mask() -> None:
    eye = torch.eye(2)
    mask = torch.tensor([[False, True], [False, False]])
    # Forward row 0 keeps only its positive (loss 0), row 1 unchanged (L); backward: mask^T
    # drops anchor 0 as a negative of positive 1 (0) and keeps row 0 (L). Mean of 4 terms / 2.
    terms = info_nce(eye, eye, torch.tensor(1.0), mask=mask)
    assert terms["loss"].item() == pytest.approx(L / 2, abs=1e-6)
    # The diagonal is never masked.
    full = info_nce(eye, eye, torch.tensor(1.0), mask=torch.ones(2, 2, dtype=torch.bool))
    assert full["loss"].item() == pytest.approx(0.0, abs=1e-7)


def test_info_nce_logq_correction() -> None:
    eye = torch.eye(2)
    logq = torch.tensor([0.0, math.log(2.0)])
    terms = info_nce(eye, eye, torch.tensor(1.0), logq_positives=logq)
    # forward row 0: logits [1, -log 2]; row 1: [0, 1 - log 2]
    fwd = (math.log(1 + 0.5 * math.exp(-1)) + math.log(1 + 2 * math.exp(-1))) / 2
    assert terms["loss"].item() == pytest.approx((fwd + L) / 2, abs=1e-6)


def test_uniformity_hand_computed() -> None:
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    # squared distances 2, 4, 2 -> log mean exp(-2 d)
    want = math.log((2 * math.exp(-4) + math.exp(-8)) / 3)
    assert uniformity(x, 2.0).item() == pytest.approx(want, abs=1e-6)
    assert uniformity(x[:1], 2.0).item() == 0.0


def test_set_to_track_hand_computed() -> None:
    items = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    anchors = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # anchor 0: context {0}, targets {1, 2}: logits [-inf, 0, -1]
    #   -log p(1) = log(1 + e^-1) = L;  -log p(2) = 1 + L;  mean 0.5 + L
    # anchor 1: context {1}, target {0}: logits [0, -inf, 0] -> log 2
    terms = set_to_track(anchors, items, torch.tensor(1.0),
                         torch.tensor([0, 1]), torch.tensor([0, 1]),
                         torch.tensor([0, 0, 1]), torch.tensor([1, 2, 0]))
    assert terms["loss"].item() == pytest.approx(((0.5 + L) + math.log(2)) / 2, abs=1e-6)
    assert "set_nce" in terms


def test_set_to_track_gradient_flows_to_items_and_anchors() -> None:
    items = torch.nn.functional.normalize(torch.randn(5, 3, generator=torch.Generator()
                                                      .manual_seed(0)), dim=1)
    items.requires_grad_(True)
    anchor = items[:2].sum(0, keepdim=True)
    loss = set_to_track(torch.nn.functional.normalize(anchor, dim=1), items, torch.tensor(5.0),
                        torch.tensor([0, 0]), torch.tensor([0, 1]), torch.tensor([0]),
                        torch.tensor([3]))["loss"]
    loss.backward()
    assert items.grad is not None and torch.isfinite(items.grad).all()
    assert items.grad[3].abs().sum() > 0


def _set_case(seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    items = torch.nn.functional.normalize(torch.randn(40, 8, generator=g), dim=1)
    anchors = torch.nn.functional.normalize(torch.randn(3, 8, generator=g), dim=1)
    ctx_rows, ctx_cols = torch.tensor([0, 0, 1, 2]), torch.tensor([1, 2, 5, 7])
    tgt_rows, tgt_cols = torch.tensor([0, 1, 1, 2, 2, 2]), torch.tensor([3, 4, 9, 8, 30, 39])
    return items, anchors, ctx_rows, ctx_cols, tgt_rows, tgt_cols


def test_sampled_set_to_track_with_every_item_is_the_full_softmax() -> None:
    items, anchors, ctx_rows, ctx_cols, tgt_rows, tgt_cols = _set_case()
    full = set_to_track(anchors, items, torch.tensor(7.0), ctx_rows, ctx_cols, tgt_rows,
                        tgt_cols)["loss"]
    sampled = sampled_set_to_track(anchors, items, torch.tensor(7.0), torch.zeros(40), ctx_rows,
                                   ctx_cols, tgt_rows, tgt_cols)["loss"]
    assert sampled.item() == pytest.approx(full.item(), abs=1e-6)


def test_sampled_set_to_track_hand_computed_with_logq() -> None:
    # One anchor [1, 0]; candidates [1,0], [0,1], [-1,0]; context {0}, target {1}.
    # Corrected logits: [-inf, 0 - log 0.5, -1 - log 0.25] = [-inf, log 2, -1 + log 4];
    # loss = -log 2 + log(2 + 4 e^-1).
    cands = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    logq = torch.log(torch.tensor([1.0, 0.5, 0.25]))
    terms = sampled_set_to_track(torch.tensor([[1.0, 0.0]]), cands, torch.tensor(1.0), logq,
                                 torch.tensor([0]), torch.tensor([0]), torch.tensor([0]),
                                 torch.tensor([1]))
    expected = -math.log(2) + math.log(2 + 4 * math.exp(-1))
    assert terms["loss"].item() == pytest.approx(expected, abs=1e-6)
    assert terms["set_nce"].item() == pytest.approx(expected, abs=1e-6)


def test_sampled_set_to_track_subset_matches_full_gradient_direction() -> None:
    # A candidate set of the targets plus most items, logq = log(inclusion), gives a gradient
    # on the anchors close to the full softmax's (cosine > 0.9).
    items, anchors, ctx_rows, ctx_cols, tgt_rows, tgt_cols = _set_case(1)
    a_full = anchors.clone().requires_grad_(True)
    set_to_track(a_full, items, torch.tensor(5.0), ctx_rows, ctx_cols, tgt_rows,
                 tgt_cols)["loss"].backward()
    keep = torch.tensor(sorted(set(range(0, 40, 2)) | set(tgt_cols.tolist())
                               | set(ctx_cols.tolist())))
    pos = {int(c): i for i, c in enumerate(keep.tolist())}
    logq = torch.log(torch.where(keep % 2 == 0, 1.0, 0.5)).float()
    a_s = anchors.clone().requires_grad_(True)
    sampled_set_to_track(a_s, items[keep], torch.tensor(5.0), logq, ctx_rows,
                         torch.tensor([pos[int(c)] for c in ctx_cols]), tgt_rows,
                         torch.tensor([pos[int(c)] for c in tgt_cols]))["loss"].backward()
    assert a_full.grad is not None and a_s.grad is not None
    cos = torch.nn.functional.cosine_similarity(a_full.grad.flatten(), a_s.grad.flatten(), dim=0)
    assert cos.item() > 0.9
