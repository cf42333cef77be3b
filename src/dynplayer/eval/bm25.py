"""Okapi BM25 over captions in numpy/scipy: the lexical peer of the text model."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

_TOKEN = re.compile(r"\w+|[^\w\s]")
_PUNCT = set(string.punctuation)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens (any script), plus symbols such as emoji; ASCII punctuation is
    dropped."""
    return [t for t in _TOKEN.findall(text.lower()) if t not in _PUNCT]


class BM25:
    """score(q, d) = sum over query terms t of idf(t) tf(t,d) (k1+1) / (tf(t,d) + k1 (1 - b +
    b |d| / avgdl)), idf(t) = log(1 + (N - df + 0.5) / (df + 0.5)).

    Document term weights are precomputed into a sparse matrix, so scoring a batch of queries is
    one sparse product (query term counts x weights^T).
    """

    def __init__(self, docs: Sequence[str], k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.vocab: dict[str, int] = {}
        tf = self._counts(docs, grow=True)
        n = tf.shape[0]
        df = np.bincount(tf.indices, minlength=len(self.vocab))
        self.idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
        dl = np.asarray(tf.sum(axis=1)).ravel()
        avgdl = max(float(dl.mean()), 1e-9) if n else 1.0
        norm = k1 * (1 - b + b * dl / avgdl)
        rows = np.repeat(np.arange(n), np.diff(tf.indptr))
        w = tf.data * (k1 + 1) / (tf.data + norm[rows]) * self.idf[tf.indices]
        self.weights = sp.csr_matrix((w.astype(np.float32), tf.indices, tf.indptr),
                                     shape=tf.shape)

    def _counts(self, texts: Sequence[str], grow: bool) -> sp.csr_matrix:
        rows: list[int] = []
        cols: list[int] = []
        for i, text in enumerate(texts):
            for tok in tokenize(text):
                j = self.vocab.get(tok)
                if j is None:
                    if not grow:
                        continue
                    j = self.vocab[tok] = len(self.vocab)
                rows.append(i)
                cols.append(j)
        mat = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                            shape=(len(texts), len(self.vocab)))
        mat.sum_duplicates()
        return mat

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        """Dense (n_queries, n_docs) BM25 scores; each distinct query term counts once."""
        q = self._counts(queries, grow=False)
        q.data[:] = 1.0
        return np.asarray((q @ self.weights.T).todense(), dtype=np.float32)
