"""Hubness diagnostics for any set of track vectors (cosine geometry), with PNG plots.

Hubs are tracks that turn up in many other tracks' nearest-neighbour lists; anti-hubs turn up in
none. A healthy embedding for recommendation has a mildly skewed k-occurrence distribution and
no strong link between popularity and hubness.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dynplayer.eval.metrics import gini


def _normalize(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def knn_indices(vectors: np.ndarray, k: int = 10, batch_size: int = 2048) -> np.ndarray:
    """Each track's k nearest other tracks by cosine (N x k), self excluded, batched."""
    v = _normalize(vectors)
    n = v.shape[0]
    k = min(k, n - 1)
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, batch_size):
        sims = v[start:start + batch_size] @ v.T
        idx = np.arange(start, min(start + batch_size, n))
        sims[idx - start, idx] = -np.inf
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1, kind="stable")
        out[start:start + batch_size] = np.take_along_axis(part, order, axis=1)
    return out


def k_occurrence(vectors: np.ndarray, k: int = 10) -> np.ndarray:
    """N_k(i): in how many other tracks' k-NN lists track i appears."""
    return occurrence_counts(knn_indices(vectors, k), vectors.shape[0])


def occurrence_counts(top: np.ndarray, n_items: int) -> np.ndarray:
    """N_k(j): how many of the queries' top-k lists (rows of `top`) contain item j."""
    return np.bincount(np.asarray(top).ravel(), minlength=n_items)


def top_k_hubness(top: np.ndarray, n_items: int) -> dict[str, Any]:
    """Concentration of k-occurrence: skewness of N_k, Gini, share of all slots taken by the
    1% most retrieved items, and the share of items never retrieved."""
    nk = occurrence_counts(top, n_items).astype(np.float64)
    mu, sd = nk.mean(), nk.std()
    skew = float(((nk - mu) ** 3).mean() / sd ** 3) if sd > 0 else 0.0
    n_top = max(1, int(round(0.01 * n_items)))
    top_share = float(np.sort(nk)[::-1][:n_top].sum() / max(nk.sum(), 1))
    return {"k": int(top.shape[1]), "n_queries": int(top.shape[0]), "skewness": skew,
            "gini": gini(nk), "top1pct_share": top_share,
            "never_retrieved": float((nk == 0).mean()), "max_occurrence": int(nk.max())}


def skewness(x: np.ndarray) -> float:
    """Sample skewness E[(x - mean)^3] / std^3 (0 for a symmetric distribution)."""
    x = np.asarray(x, dtype=np.float64)
    sd = x.std()
    return float(((x - x.mean()) ** 3).mean() / sd**3) if sd > 0 else 0.0


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank), for Spearman correlation."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    ranks = np.empty(x.shape[0], dtype=np.float64)
    starts = np.r_[0, np.flatnonzero(np.diff(xs)) + 1]
    ends = np.r_[starts[1:], x.shape[0]]
    mean_rank = (starts + ends - 1) / 2.0
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks)."""
    ra, rb = _ranks(np.asarray(a, float)), _ranks(np.asarray(b, float))
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def hubness_stats(
    vectors: np.ndarray,
    popularity: np.ndarray,
    *,
    k: int = 10,
    n_sample: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Hubness figures for track vectors (row r) with training popularity `popularity[r]`.

    - mean_pairwise_cosine: mean cosine over distinct pairs of a random sample of n_sample tracks
    - mean_cosine_by_popularity_decile: mean cosine of a track to every other track (exact:
      (v_i . sum_j v_j - 1) / (N - 1)), averaged within popularity deciles (0 = least popular)
    - k_occurrence: N_k distribution summary, skewness, the largest N_k, anti-hub share (N_k = 0)
    - popularity_k_occurrence_spearman: rank correlation of popularity with N_k
    """
    v = _normalize(vectors)
    n = v.shape[0]
    rng = np.random.default_rng(seed)
    sample = rng.choice(n, size=min(n_sample, n), replace=False)
    s = v[sample] @ v[sample].T
    iu = np.triu_indices(sample.shape[0], 1)
    pair_cos = s[iu]
    to_rest = (v @ v.sum(axis=0) - np.einsum("ij,ij->i", v, v)) / max(n - 1, 1)
    pop = np.asarray(popularity, dtype=np.float64)
    # deciles by popularity rank, so ties do not leave deciles empty
    decile = np.minimum((np.argsort(np.argsort(pop, kind="stable")) * 10) // n, 9)
    by_decile = [float(to_rest[decile == d].mean()) if (decile == d).any() else float("nan")
                 for d in range(10)]
    nk = k_occurrence(v, k)
    counts = np.bincount(nk)
    return {
        "n_tracks": int(n),
        "k": int(k),
        "mean_pairwise_cosine": float(pair_cos.mean()) if pair_cos.size else 0.0,
        "mean_cosine_by_popularity_decile": by_decile,
        "k_occurrence_skewness": skewness(nk),
        "k_occurrence_max": int(nk.max()),
        "k_occurrence_p99": float(np.percentile(nk, 99)),
        "anti_hub_share": float((nk == 0).mean()),
        "hub_share": float((nk >= 5 * k).mean()),  # in at least 5k lists
        "popularity_k_occurrence_spearman": spearman(pop, nk),
        "k_occurrence_histogram": counts.tolist(),
        "_arrays": {"pair_cos": pair_cos, "to_rest": to_rest, "k_occurrence": nk, "pop": pop},
    }


def public(stats: dict[str, Any]) -> dict[str, Any]:
    """The JSON-safe part of `hubness_stats` (without the raw arrays)."""
    return {k: v for k, v in stats.items() if not k.startswith("_")}


def plot_hubness(stats_by_method: dict[str, dict[str, Any]], out_dir: Path) -> dict[str, str]:
    """Four PNGs comparing methods: pairwise cosine histogram, cosine-to-rest by popularity
    decile, k-occurrence distribution (log-log), popularity vs k-occurrence. Returns name -> file.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}

    def save(fig: Any, name: str) -> None:
        path = out_dir / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        files[name] = path.name

    fig, ax = plt.subplots(figsize=(6, 4))
    for m, st in stats_by_method.items():
        ax.hist(st["_arrays"]["pair_cos"], bins=80, histtype="step", density=True,
                label=f"{m} (mean {st['mean_pairwise_cosine']:.3f})")
    ax.set(xlabel="cosine between two random tracks", ylabel="density",
           title="Pairwise cosine (sampled)")
    ax.legend(fontsize=8)
    save(fig, "hubness_pairwise_cosine")

    fig, ax = plt.subplots(figsize=(6, 4))
    for m, st in stats_by_method.items():
        ax.plot(range(1, 11), st["mean_cosine_by_popularity_decile"], marker="o", label=m)
    ax.set(xlabel="popularity decile (1 = rarest)", ylabel="mean cosine to all other tracks",
           title="Mean cosine to the rest by popularity")
    ax.legend(fontsize=8)
    save(fig, "hubness_cosine_by_popularity")

    fig, ax = plt.subplots(figsize=(6, 4))
    for m, st in stats_by_method.items():
        h = np.asarray(st["k_occurrence_histogram"], dtype=float)
        x = np.flatnonzero(h)
        ax.plot(x + 1, h[x] / h.sum(), marker=".", linestyle="none",
                label=f"{m} (skew {st['k_occurrence_skewness']:.2f})")
    ax.set(xscale="log", yscale="log", xlabel=f"k-occurrence + 1 (k = {_k(stats_by_method)})",
           ylabel="share of tracks", title="k-occurrence distribution of the k-NN graph")
    ax.legend(fontsize=8)
    save(fig, "hubness_k_occurrence")

    fig, ax = plt.subplots(figsize=(6, 4))
    for m, st in stats_by_method.items():
        # mean k-occurrence per popularity decile: a scatter of 10k tracks hides the trend
        a = st["_arrays"]
        pop, nk = a["pop"], a["k_occurrence"]
        dec = np.minimum((np.argsort(np.argsort(pop, kind="stable")) * 10) // pop.shape[0], 9)
        means = [nk[dec == d].mean() if (dec == d).any() else np.nan for d in range(10)]
        ax.plot(range(1, 11), means, marker="o",
                label=f"{m} (Spearman {st['popularity_k_occurrence_spearman']:.2f})")
    ax.axhline(_k(stats_by_method), color="grey", linewidth=0.8, linestyle=":")
    ax.set(xlabel="popularity decile (1 = rarest)", ylabel="mean k-occurrence",
           title="Popularity vs k-occurrence (dotted: k, the overall mean)")
    ax.legend(fontsize=8)
    save(fig, "hubness_popularity_vs_k_occurrence")
    return files


def _k(stats_by_method: dict[str, dict[str, Any]]) -> int:
    return int(next(iter(stats_by_method.values()))["k"]) if stats_by_method else 10
