"""Text stage units: projection heads, losses against hand-computed values, BM25, QB-Norm,
aggregation, query validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from dynplayer.errors import QueryError
from dynplayer.eval.hubness import occurrence_counts, top_k_hubness
from dynplayer.text.bm25 import BM25, tokenize
from dynplayer.text.hubness import inverted_softmax_bias
from dynplayer.text.model import (
    LOGIT_SCALE_INIT,
    CaptionPlaylistModel,
    ResidualProjection,
    TextConfig,
    clip_loss,
    head_to_numpy,
    project_numpy,
    track_loss,
)
from dynplayer.text.search import MAX_QUERY_CHARS, aggregate_scores, check_query, top_rows


def test_projection_head_shapes_and_residual_path() -> None:
    torch.manual_seed(0)
    head = ResidualProjection(16, 8, 32).eval()
    x = torch.randn(5, 16)
    assert head(x).shape == (5, 8)
    # With the second layer zeroed, only the residual (skip) path is left.
    with torch.no_grad():
        head.fc2.weight.zero_()
        head.fc2.bias.zero_()
    assert isinstance(head.skip, torch.nn.Linear)
    assert torch.allclose(head(x), head.skip(x))
    same = ResidualProjection(8, 8, 4).eval()
    with torch.no_grad():
        same.fc2.weight.zero_()
        same.fc2.bias.zero_()
    y = torch.randn(3, 8)
    assert torch.equal(same(y), y)  # identity skip when dimensions agree


def test_model_features_are_normalised_and_scale_initialised() -> None:
    cfg = TextConfig(embed_dim=6, hidden=10, dropout=0.0)
    model = CaptionPlaylistModel(12, 4, cfg).eval()
    t, p, scale = model(torch.randn(7, 12), torch.randn(7, 4))
    assert t.shape == (7, 6) and p.shape == (7, 6)
    assert torch.allclose(t.norm(dim=1), torch.ones(7), atol=1e-5)
    assert torch.allclose(p.norm(dim=1), torch.ones(7), atol=1e-5)
    assert float(scale.detach()) == pytest.approx(math.log(1 / 0.07))
    assert LOGIT_SCALE_INIT == pytest.approx(2.659260, abs=1e-6)


def test_numpy_forward_matches_torch() -> None:
    torch.manual_seed(1)
    for in_dim in (12, 6):
        head = ResidualProjection(in_dim, 6, 9).eval()
        x = torch.randn(4, in_dim)
        expected = torch.nn.functional.normalize(head(x), dim=1).detach().numpy()
        got = project_numpy(head_to_numpy(head, "h"), "h", x.numpy())
        assert np.allclose(got, expected, atol=1e-5)


def test_clip_loss_hand_computed() -> None:
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    scale = torch.tensor(0.0)  # exp(0) = 1: logits = T P^T = [[1, 0.6], [0, 0.8]]
    out = clip_loss(t, p, scale)
    e = math.exp
    t2p = (-math.log(e(1) / (e(1) + e(0.6))) - math.log(e(0.8) / (e(0) + e(0.8)))) / 2
    p2t = (-math.log(e(1) / (e(1) + e(0))) - math.log(e(0.8) / (e(0.6) + e(0.8)))) / 2
    assert float(out["text_to_playlist"]) == pytest.approx(t2p, abs=1e-6)
    assert float(out["playlist_to_text"]) == pytest.approx(p2t, abs=1e-6)
    assert float(out["contrastive_loss"]) == pytest.approx((t2p + p2t) / 2, abs=1e-6)
    # With scale log(2) every logit doubles.
    doubled = clip_loss(t, p, torch.tensor(math.log(2.0)))
    t2p2 = (-math.log(e(2) / (e(2) + e(1.2))) - math.log(e(1.6) / (e(0) + e(1.6)))) / 2
    assert float(doubled["text_to_playlist"]) == pytest.approx(t2p2, abs=1e-6)


def test_identical_captions_are_not_negatives() -> None:
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]])
    scale = torch.tensor(0.0)
    ids = torch.tensor([0, 0, 1])  # rows 0 and 1 share a caption
    out = clip_loss(t, p, scale, ids)
    logits = (t @ p.T).numpy()
    e = np.exp
    # Row 0's candidates: itself and row 2 (row 1 is masked); row 1 likewise; row 2 sees all.
    r0 = -np.log(e(logits[0, 0]) / (e(logits[0, 0]) + e(logits[0, 2])))
    r1 = -np.log(e(logits[1, 1]) / (e(logits[1, 1]) + e(logits[1, 2])))
    r2 = -np.log(e(logits[2, 2]) / e(logits[2]).sum())
    assert float(out["text_to_playlist"]) == pytest.approx((r0 + r1 + r2) / 3, abs=1e-6)
    unmasked = clip_loss(t, p, scale)
    assert float(unmasked["text_to_playlist"]) > float(out["text_to_playlist"])


def test_track_loss_hand_computed() -> None:
    t = torch.tensor([[1.0, 0.0]])
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    y = torch.tensor([[1.0, 1.0, 0.0]])  # two positives, weight 1/2 each
    out = track_loss(t, v, y, torch.tensor(0.0))
    z = math.exp(1) + math.exp(0) + math.exp(-1)
    expected = -(0.5 * math.log(math.exp(1) / z) + 0.5 * math.log(1 / z))
    assert float(out["text_to_track"]) == pytest.approx(expected, abs=1e-6)


def test_bm25_hand_computed() -> None:
    docs = ["rock party", "rock", "chill jazz jazz"]
    bm = BM25(docs, k1=1.2, b=0.75)
    s = bm.scores(["jazz", "rock", "unknown"])
    n, avgdl = 3, (2 + 1 + 3) / 3
    idf_jazz = math.log(1 + (n - 1 + 0.5) / (1 + 0.5))
    idf_rock = math.log(1 + (n - 2 + 0.5) / (2 + 0.5))

    def term(tf: float, dl: float, idf: float) -> float:
        return idf * tf * 2.2 / (tf + 1.2 * (1 - 0.75 + 0.75 * dl / avgdl))

    assert s[0] == pytest.approx([0, 0, term(2, 3, idf_jazz)], abs=1e-5)
    assert s[1] == pytest.approx([term(1, 2, idf_rock), term(1, 1, idf_rock), 0], abs=1e-5)
    assert not s[2].any()
    assert tokenize("신나는 여름 노래! 🎉") == ["신나는", "여름", "노래", "🎉"]


def test_inverted_softmax_bias_and_k_occurrence() -> None:
    bank = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.0]])
    bias = inverted_softmax_bias(bank, beta=2.0)
    expected = np.log(np.exp(2 * bank).sum(axis=0)) / 2
    assert np.allclose(bias, expected, atol=1e-6)
    # Item 0 is a hub (every bank query likes it): a tie in raw similarity is broken against it.
    q = np.array([0.5, 0.5])
    assert np.argmax(q - bias) == 1
    diag = inverted_softmax_bias(bank[:2], beta=1.0, exclude_diagonal=True)
    assert np.allclose(diag, [0.8, 0.1], atol=1e-6)  # each item keeps only the other query
    top = np.array([[0, 1], [0, 2], [0, 1]])
    assert occurrence_counts(top, 4).tolist() == [3, 2, 1, 0]
    h = top_k_hubness(top, 4)
    assert h["never_retrieved"] == 0.25 and h["max_occurrence"] == 3


def test_aggregate_scores_hand_computed() -> None:
    occ = sp.csr_matrix(np.array([[1, 0, 2], [0, 1, 1], [5, 5, 5]], dtype=np.float32))
    s = aggregate_scores(occ, np.array([[0, 1]]), np.array([[0.5, 0.25]]))
    assert s[0] == pytest.approx([0.5, 0.25, 1.25])
    s2 = aggregate_scores(occ, np.array([[0, 1], [1, 2]]), np.array([[0.5, 0.5], [1.0, -0.3]]),
                          power=2.0)
    assert s2[0] == pytest.approx([0.25, 0.25, 0.75])
    assert s2[1] == pytest.approx([0.0, 1.0, 1.0])  # a negative similarity contributes nothing
    rows, vals = top_rows(np.array([[0.1, 0.9, 0.5]]), 2)
    assert rows.tolist() == [[1, 2]] and vals[0] == pytest.approx([0.9, 0.5])


@pytest.mark.parametrize(("bad", "why"), [
    ("", "the query is empty"), ("   \t\n ", "the query is empty"),
    ("x" * 10_000, "query is 10,000 characters long; the limit is 500"),
    ("a" * (MAX_QUERY_CHARS + 1), "query is 501 characters long; the limit is 500"),
])
def test_bad_queries_get_a_clear_error(bad: str, why: str) -> None:
    """Each bad query gets the one line that names its own problem."""
    with pytest.raises(QueryError) as err:
        check_query(bad)
    msg = str(err.value)
    assert "\n" not in msg and why in msg


def test_query_normalisation_keeps_emoji_and_hangul() -> None:
    assert check_query("  Rainy   DAY 🌧 재즈 ") == "rainy day 🌧 재즈"
    assert check_query("x" * MAX_QUERY_CHARS) == "x" * MAX_QUERY_CHARS
