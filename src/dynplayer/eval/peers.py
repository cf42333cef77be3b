"""Classical peers evaluated on the same split and candidates as Dynplayer.

Every peer has one small interface: `fit(data)` on the training playlists' selected-track matrix
(and, for item2vec, their ordered sequences), then `score(visible)` -> dense scores over the
vocabulary for a batch of evaluated playlists (given only their visible tracks; ALS and BPR fold
them in as new users). `params` holds the hyperparameters in use; `tune_peer` picks them on a
validation eval set from a small grid.
"""

from __future__ import annotations

import copy
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from dynplayer.errors import ConfigError


@dataclass
class TrainData:
    """What peers are fitted on: the binary train playlist x vocabulary matrix, plus sequences.

    `seq_indptr`/`seq_cols` are the ordered vocabulary rows of each training playlist
    (`Corpus.sequences`), needed only by item2vec.
    """

    matrix: sp.csr_matrix
    seq_indptr: np.ndarray | None = None
    seq_cols: np.ndarray | None = None

    @property
    def n_items(self) -> int:
        return int(self.matrix.shape[1])


class Peer:
    """Base interface: `fit` once, then `score` batches of visible rows."""

    name: str = "peer"
    # Parameters that only change scoring: tuning reuses one fit for all their values.
    score_only: tuple[str, ...] = ()

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = dict(params)

    def fit(self, data: TrainData) -> Peer:
        raise NotImplementedError

    def score(self, visible: sp.csr_matrix) -> np.ndarray:
        """Scores (n x V, float32) for a batch of visible rows (CSR, n x V, binary)."""
        raise NotImplementedError

    def item_vectors(self) -> np.ndarray | None:
        """Per-track vectors when the method has them (for hubness and the genre probe)."""
        return None


def _stable_hash(text: str) -> int:
    """gensim seeds each word's initial vector with hashfxn; Python's str hash is salted."""
    return zlib.crc32(text.encode())


def _blas_threads(n: int) -> Any:
    from threadpoolctl import threadpool_limits

    return threadpool_limits(n, "blas")


def _binary(x: sp.spmatrix) -> sp.csr_matrix:
    m = sp.csr_matrix(x, dtype=np.float32, copy=True)
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


class Popularity(Peer):
    """Every playlist gets the most frequent training tracks."""

    name = "popularity"

    def fit(self, data: TrainData) -> Popularity:
        self.counts = np.asarray(data.matrix.sum(axis=0)).ravel().astype(np.float32)
        return self

    def score(self, visible: sp.csr_matrix) -> np.ndarray:
        return np.broadcast_to(self.counts, (visible.shape[0], self.counts.shape[0])).copy()


class ItemKNN(Peer):
    """Item-based kNN: cosine between track columns of the playlist x track matrix.

    score(p, j) = sum over visible i of sim(i, j), keeping each track's `neighbours` most
    similar tracks (None = all); sim(i, j) = |i and j| / (sqrt(|i| |j|) + shrinkage), the cosine
    shrunk toward 0 for rarely seen pairs (shrinkage 0 = the plain cosine).
    """

    name = "itemknn"

    def __init__(self, neighbours: int | None = None, shrinkage: float = 0.0) -> None:
        super().__init__(neighbours=neighbours, shrinkage=shrinkage)

    def fit(self, data: TrainData) -> ItemKNN:
        x = _binary(data.matrix)
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel()).astype(np.float32)
        sim = np.asarray((x.T @ x).toarray(), dtype=np.float32)
        shrink = float(self.params.get("shrinkage", 0.0))
        for a in range(0, sim.shape[0], 1024):  # row blocks: no second V x V temporary
            sim[a:a + 1024] /= np.maximum(norms[a:a + 1024, None] * norms[None, :] + shrink,
                                          1e-12)
        np.fill_diagonal(sim, 0.0)
        k = self.params["neighbours"]
        if k is not None and k < sim.shape[0]:
            # keep, for each source track (row), its k most similar targets
            cut = np.partition(sim, sim.shape[1] - k, axis=1)[:, sim.shape[1] - k][:, None]
            sim[sim < cut] = 0.0
        self.sim = sim
        return self

    def score(self, visible: sp.csr_matrix) -> np.ndarray:
        return np.asarray(visible @ self.sim, dtype=np.float32)


def ease_weights(x: sp.csr_matrix, lam: float) -> np.ndarray:
    """EASE (Steck 2019): B = I - P diag(1/diag(P)), P = (X^T X + lam I)^-1, diag(B) = 0.

    When there are fewer playlists than tracks, P comes from the Woodbury identity
    P = (I - X^T (X X^T + lam I)^-1 X) / lam, which inverts an n x n matrix instead of V x V.
    """
    x = _binary(x)
    n, v = x.shape
    if n < v:
        k = (x @ x.T).toarray().astype(np.float64)
        k[np.diag_indices(n)] += lam
        m = sla.cho_solve(sla.cho_factor(k, lower=True, overwrite_a=True),
                          np.eye(n), overwrite_b=True)
        xtm = np.asarray(x.T @ m, dtype=np.float32)  # V x n
        q = np.asarray((x.T @ xtm.T).T, dtype=np.float32)  # X^T M X, V x V
        del xtm, m, k
        # P = (I - Q) / lam, so B_ij = -P_ij / P_jj = Q_ij / (1 - Q_jj): lam cancels, one pass
        q /= (1.0 - np.diag(q).astype(np.float64)).astype(np.float32)[None, :]
        np.fill_diagonal(q, 0.0)
        return q
    else:
        g = (x.T @ x).toarray().astype(np.float64)
        g[np.diag_indices(v)] += lam
        c, low = sla.cho_factor(g, lower=True, overwrite_a=True)
        p = np.asarray(sla.cho_solve((c, low), np.eye(v), overwrite_b=True), dtype=np.float32)
        del g, c
    d = np.diag(p).copy()
    p /= -d[None, :]
    np.fill_diagonal(p, 0.0)
    return p


class EASE(Peer):
    """EASE: a closed-form linear item-item model (ridge regression with a zero diagonal)."""

    name = "ease"

    def __init__(self, lam: float = 100.0) -> None:
        super().__init__(lam=lam)

    def fit(self, data: TrainData) -> EASE:
        self.b = ease_weights(data.matrix, float(self.params["lam"]))
        return self

    def score(self, visible: sp.csr_matrix) -> np.ndarray:
        return np.asarray(visible @ self.b, dtype=np.float32)


class ALS(Peer):
    """Implicit-feedback ALS (`implicit`); evaluated playlists are folded in as new users."""

    name = "als"

    def __init__(self, factors: int = 128, regularization: float = 0.05, alpha: float = 10.0,
                 iterations: int = 15, seed: int = 0, threads: int = 2) -> None:
        super().__init__(factors=factors, regularization=regularization, alpha=alpha,
                         iterations=iterations, seed=seed)
        self.threads = threads

    def fit(self, data: TrainData) -> ALS:
        from implicit.cpu.als import AlternatingLeastSquares

        p = self.params
        with _blas_threads(1):  # implicit's own threads; nested BLAS threads only slow it
            self.model = AlternatingLeastSquares(
                factors=p["factors"], regularization=p["regularization"], alpha=p["alpha"],
                iterations=p["iterations"], random_state=p["seed"], num_threads=self.threads,
                calculate_training_loss=False,
            )
            self.model.fit(_binary(data.matrix), show_progress=False)
        return self

    def score(self, visible: sp.csr_matrix) -> np.ndarray:
        users = self.model.recalculate_user(np.arange(visible.shape[0]), _binary(visible))
        return np.asarray(users @ self.model.item_factors.T, dtype=np.float32)

    def item_vectors(self) -> np.ndarray:
        return np.asarray(self.model.item_factors, dtype=np.float32)


class BPR(Peer):
    """Bayesian personalised ranking (`implicit`).

    `implicit` cannot recalculate a BPR user, so evaluated playlists are folded in with the same
    objective: item factors (and the item bias, their last column) frozen, the playlist vector
    fitted by full-batch gradient ascent on sum log sigmoid(u . (y_pos - y_neg)) - reg |u|^2 over
    its visible tracks and sampled negatives.
    """

    name = "bpr"

    def __init__(self, factors: int = 128, learning_rate: float = 0.05,
                 regularization: float = 0.01, iterations: int = 100, fold_steps: int = 50,
                 seed: int = 0, threads: int = 2) -> None:
        super().__init__(factors=factors, learning_rate=learning_rate,
                         regularization=regularization, iterations=iterations,
                         fold_steps=fold_steps, seed=seed)
        self.threads = threads

    def fit(self, data: TrainData) -> BPR:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        p = self.params
        self.model = BayesianPersonalizedRanking(
            factors=p["factors"], learning_rate=p["learning_rate"],
            regularization=p["regularization"], iterations=p["iterations"],
            random_state=p["seed"], num_threads=self.threads,
        )
        self.model.fit(_binary(data.matrix), show_progress=False)
        return self

    def fold_in(self, visible: sp.csr_matrix) -> np.ndarray:
        """Playlist factors (n x f+1, last column 1) for visible rows, item factors frozen."""
        vis = _binary(visible)
        y = np.asarray(self.model.item_factors, dtype=np.float32)  # V x (f + 1), bias last
        n, f = vis.shape[0], y.shape[1] - 1
        rng = np.random.default_rng(self.params["seed"])
        rows = np.repeat(np.arange(n), np.diff(vis.indptr))
        pos = vis.indices
        counts = np.maximum(np.diff(vis.indptr), 1).astype(np.float32)[:, None]
        # Start from the mean of the visible items' factors: already a sensible direction.
        u = np.asarray(vis @ y[:, :f]) / counts
        lr, reg = 0.5, float(self.params["regularization"])
        for _ in range(int(self.params["fold_steps"])):
            neg = rng.integers(0, y.shape[0], pos.shape[0])
            diff = y[pos, :f] - y[neg, :f]
            x = np.einsum("ij,ij->i", u[rows], diff) + (y[pos, f] - y[neg, f])
            g = (1.0 / (1.0 + np.exp(np.clip(x, -30, 30))))[:, None] * diff
            grad = np.zeros_like(u)
            np.add.at(grad, rows, g)
            u += lr * (grad / counts - reg * u)
        return np.hstack([u, np.ones((n, 1), dtype=np.float32)])

    def score(self, visible: sp.csr_matrix) -> np.ndarray:
        users = self.fold_in(visible)
        return np.asarray(users @ self.model.item_factors.T, dtype=np.float32)

    def item_vectors(self) -> np.ndarray:
        return np.asarray(self.model.item_factors[:, :-1], dtype=np.float32)


class Item2Vec(Peer):
    """item2vec: gensim Word2Vec skip-gram over training sequences (window 10); a playlist is
    the normalised mean of its visible tracks' L2-normalised vectors.

    scoring="cosine" ranks tracks by cosine to that mean (the reference's reading);
    scoring="in_out" ranks by its dot product with the tracks' output (context) vectors, the
    quantity skip-gram actually fits. Which one is used is a hyperparameter chosen on validation.
    """

    name = "item2vec"
    score_only = ("scoring",)

    def __init__(self, dim: int = 128, window: int = 10, epochs: int = 10, negative: int = 5,
                 sample: float = 1e-3, ns_exponent: float = 0.75, scoring: str = "cosine",
                 seed: int = 0, threads: int = 2) -> None:
        if scoring not in ("cosine", "in_out"):
            raise ConfigError(f"item2vec scoring must be cosine or in_out, got {scoring!r}")
        super().__init__(dim=dim, window=window, epochs=epochs, negative=negative,
                         sample=sample, ns_exponent=ns_exponent, scoring=scoring, seed=seed)
        self.threads = threads

    def fit(self, data: TrainData) -> Item2Vec:
        from gensim.models import Word2Vec

        if data.seq_indptr is None or data.seq_cols is None:
            raise ConfigError("item2vec needs the training sequences (TrainData.seq_*)")
        tokens = data.seq_cols.astype(str)
        ip = data.seq_indptr
        sentences = [tokens[ip[i]:ip[i + 1]].tolist() for i in range(ip.shape[0] - 1)
                     if ip[i + 1] > ip[i]]
        p = self.params
        model = Word2Vec(sentences=sentences, vector_size=p["dim"], window=p["window"], sg=1,
                         negative=p["negative"], sample=p["sample"],
                         ns_exponent=p["ns_exponent"], min_count=1, epochs=p["epochs"],
                         seed=p["seed"], workers=self.threads, hashfxn=_stable_hash)
        vectors = np.zeros((data.n_items, p["dim"]), dtype=np.float32)
        keys = np.array([int(k) for k in model.wv.index_to_key], dtype=np.int64)
        vectors[keys] = model.wv.vectors
        # tracks never seen in training keep a zero vector (cosine 0 with everything)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.vectors = vectors / np.maximum(norms, 1e-12)
        self.out_vectors = np.zeros_like(vectors)
        self.out_vectors[keys] = model.syn1neg
        return self

    def score(self, visible: sp.csr_matrix) -> np.ndarray:
        mean = np.asarray(_binary(visible) @ self.vectors)
        mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
        targets = self.out_vectors if self.params["scoring"] == "in_out" else self.vectors
        return np.asarray(mean @ targets.T, dtype=np.float32)

    def item_vectors(self) -> np.ndarray:
        return self.vectors


PEERS: dict[str, Callable[..., Peer]] = {
    "popularity": Popularity,
    "itemknn": ItemKNN,
    "ease": EASE,
    "als": ALS,
    "bpr": BPR,
    "item2vec": Item2Vec,
}

# Tuning on validation, as wide as the product's own sweep (issue 14): EASE's lambda over two
# decades, ALS factors 64-512 by alpha, item-kNN neighbours by shrinkage.
GRIDS: dict[str, list[dict[str, Any]]] = {
    "popularity": [{}],
    "itemknn": [{"neighbours": k, "shrinkage": s} for k in (None, 50, 200, 1000)
                for s in (0.0, 10.0, 50.0)],
    "ease": [{"lam": lam} for lam in (10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0)],
    "als": [{"factors": f, "alpha": a, "regularization": 0.05} for f in (64, 128, 256, 512)
            for a in (5.0, 10.0, 20.0)],
    "bpr": [{"learning_rate": lr} for lr in (0.01, 0.05)],
    "item2vec": [{"scoring": "cosine"}, {"scoring": "in_out"}],
}


def parse_peers(spec: str) -> list[str]:
    """`all`, `none`, or a comma list of peer names, checked against the known ones."""
    spec = spec.strip().lower()
    if spec in ("", "none"):
        return []
    if spec == "all":
        return list(PEERS)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [s for s in names if s not in PEERS]
    if unknown:
        raise ConfigError(f"--peers: unknown peer(s) {', '.join(unknown)} "
                          f"(known: all, none, {', '.join(PEERS)})")
    return names


def make_peer(name: str, threads: int = 2, **params: Any) -> Peer:
    if name not in PEERS:
        raise ConfigError(f"unknown peer {name!r} (known: {', '.join(PEERS)})")
    if name in ("als", "bpr", "item2vec"):
        params["threads"] = threads
    return PEERS[name](**params)


@dataclass
class TunedPeer:
    peer: Peer
    params: dict[str, Any]
    validation: list[dict[str, Any]]  # one row per grid point: params + recall@10 + seconds
    fit_seconds: float


def tune_peer(
    name: str,
    data: TrainData,
    evaluate: Callable[[Peer], float] | None,
    grid: Iterable[dict[str, Any]] | None = None,
    *,
    threads: int = 2,
    log: Callable[[str], None] | None = None,
) -> TunedPeer:
    """Fit each grid point on `data`, keep the best by `evaluate` (validation Recall@10).

    With `evaluate=None` (or a one-point grid) the first grid point is fitted and kept.
    """
    points = list(grid if grid is not None else GRIDS.get(name, [{}]))
    if evaluate is None:
        points = points[:1]
    best: tuple[float, Peer, dict[str, Any], float] | None = None
    rows: list[dict[str, Any]] = []
    fitted: dict[str, tuple[Peer, float]] = {}
    for point in points:
        t0 = time.perf_counter()
        peer = make_peer(name, threads=threads, **point)
        key = repr(sorted((k, v) for k, v in peer.params.items() if k not in peer.score_only))
        if key in fitted:  # same fit, only the scoring differs
            base, fit_s = fitted[key]
            peer = copy.copy(base)
            peer.params = {**base.params, **point}
        else:
            peer.fit(data)
            fit_s = time.perf_counter() - t0
            if peer.score_only:  # keep only what can be reused (EASE matrices are large)
                fitted[key] = (peer, fit_s)
        val = evaluate(peer) if evaluate is not None and len(points) > 1 else float("nan")
        rows.append({**point, "val_recall@10": val, "fit_seconds": round(fit_s, 2)})
        if log is not None:
            got = f"val recall@10 {val:.4f}" if val == val else "one setting, not tuned"
            log(f"  {name} {point or ''}: {got} (fit {fit_s:.1f}s)")
        if best is None or val > best[0]:
            best = (val, peer, dict(peer.params), fit_s)
    assert best is not None
    fitted.clear()
    return TunedPeer(peer=best[1], params=best[2], validation=rows, fit_seconds=best[3])
