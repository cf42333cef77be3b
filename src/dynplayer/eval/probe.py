"""Genre linear probe: how much genre a set of frozen track vectors carries.

Multinomial logistic regression (torch, full-batch L-BFGS, L2 penalty) from standardised vectors
to the corpus' single-label genre classes (`Corpus.genre_label`, -1 = none), trained on a
stratified split and scored by Top-1 and Top-5 accuracy on the held-out part.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def stratified_split(labels: np.ndarray, test_fraction: float = 0.2,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): each class contributes round(test_fraction * size) to test,
    keeping at least one example of every class in train."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(labels.shape[0])
    lab = labels[order]
    srt = np.argsort(lab, kind="stable")
    order, lab = order[srt], lab[srt]
    starts = np.r_[0, np.flatnonzero(np.diff(lab)) + 1]
    sizes = np.diff(np.r_[starts, lab.shape[0]])
    n_test = np.minimum(np.round(sizes * test_fraction).astype(np.int64), sizes - 1)
    rank = np.arange(lab.shape[0]) - np.repeat(starts, sizes)
    is_test = rank < np.repeat(n_test, sizes)
    return np.sort(order[~is_test]), np.sort(order[is_test])


def linear_probe(
    vectors: np.ndarray,
    labels: np.ndarray,
    *,
    test_fraction: float = 0.2,
    weight_decay: float = 1e-4,
    max_iter: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """Top-1 / Top-5 test accuracy of a multinomial logistic regression on frozen vectors.

    Rows with label < 0 are ignored. Features are standardised with the train part's statistics.
    Also returns the majority-class rate on the test part (the accuracy of always guessing the
    most common train class) as a floor to read the numbers against.
    """
    import torch

    labels = np.asarray(labels, dtype=np.int64)
    keep = np.flatnonzero(labels >= 0)
    x_all = np.asarray(vectors, dtype=np.float32)[keep]
    present, y_all = np.unique(labels[keep], return_inverse=True)
    n_classes = int(present.shape[0])
    tr, te = stratified_split(y_all, test_fraction, seed)
    mu = x_all[tr].mean(axis=0)
    sd = x_all[tr].std(axis=0) + 1e-6
    x_all = (x_all - mu) / sd

    prev_threads = torch.get_num_threads()
    torch.set_num_threads(min(2, prev_threads))
    try:
        gen = torch.Generator().manual_seed(seed)
        xt = torch.from_numpy(x_all[tr])
        yt = torch.from_numpy(y_all[tr])
        lin = torch.nn.Linear(x_all.shape[1], n_classes)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=gen) * 0.01)
            lin.bias.zero_()
        opt = torch.optim.LBFGS(lin.parameters(), lr=1.0, max_iter=max_iter,
                                history_size=20, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(lin(xt), yt)
            loss = loss + weight_decay * (lin.weight**2).sum()
            loss.backward()  # type: ignore[no-untyped-call]
            return loss

        opt.step(closure)  # type: ignore[no-untyped-call]
        with torch.no_grad():
            logits = lin(torch.from_numpy(x_all[te])).numpy()
    finally:
        torch.set_num_threads(prev_threads)
    y_te = y_all[te]
    k5 = min(5, n_classes)
    top5 = np.argpartition(-logits, k5 - 1, axis=1)[:, :k5]
    majority = np.bincount(y_all[tr], minlength=n_classes).argmax()
    return {
        "top1": float((logits.argmax(axis=1) == y_te).mean()) if te.size else 0.0,
        "top5": float((top5 == y_te[:, None]).any(axis=1).mean()) if te.size else 0.0,
        "majority_rate": float((y_te == majority).mean()) if te.size else 0.0,
        "n_train": int(tr.shape[0]),
        "n_test": int(te.shape[0]),
        "n_classes": n_classes,
        "dim": int(x_all.shape[1]),
    }


def random_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Gaussian vectors (L2-normalised), the probe's no-information reference."""
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)
