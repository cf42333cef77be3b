"""What other tools read from a trained run: the export layout and nearest-track lookup."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dynplayer.data.corpus import load_corpus
from dynplayer.errors import ArtifactError, QueryError
from dynplayer.run import Run, atomic_save_npy, atomic_write_bytes, l2_normalize, load_run


def export_run(run_dir: Path, out: Path, *, projector: bool = False) -> list[Path]:
    """Write out/vectors.npy (float32 N x d, L2-normalised) and out/ids.txt (N ids, same order).

    With `projector`, also vectors.tsv and metadata.tsv (header `name<TAB>artist`) for the
    TensorBoard Embedding Projector. Returns the written paths.
    """
    run = load_run(run_dir)
    vectors = l2_normalize(run.vectors).astype(np.float32)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_save_npy(out / "vectors.npy", vectors)
    atomic_write_bytes(out / "ids.txt", ("\n".join(run.ids) + "\n").encode())
    written = [out / "vectors.npy", out / "ids.txt"]
    if projector:
        names, artists = _track_labels(run)
        rows = "\n".join("\t".join(f"{x:.6g}" for x in v) for v in vectors)
        atomic_write_bytes(out / "vectors.tsv", (rows + "\n").encode())
        meta = ["name\tartist"] + [f"{_tsv(n)}\t{_tsv(a)}" for n, a in zip(names, artists,
                                                                             strict=True)]
        atomic_write_bytes(out / "metadata.tsv", ("\n".join(meta) + "\n").encode())
        written += [out / "vectors.tsv", out / "metadata.tsv"]
    return written


def _tsv(text: str | None) -> str:
    return " ".join((text or "").replace("\t", " ").split())


def _track_labels(run: Run) -> tuple[list[str | None], list[str | None]]:
    """Names and artists of the run's tracks, from the corpus it was trained on (or empty)."""
    try:
        corpus = load_corpus(run.corpus_dir)
    except ArtifactError:
        return [None] * len(run.ids), [None] * len(run.ids)
    row = {t: i for i, t in enumerate(corpus.track_ids)}
    idx = [row.get(t) for t in run.ids]
    return ([corpus.track_names[i] if i is not None else None for i in idx],
            [corpus.artists[i] if i is not None else None for i in idx])


@dataclass
class Neighbour:
    track_id: str
    score: float
    name: str | None
    artist: str | None


def similar_tracks(run: Run, track_id: str, k: int = 10) -> list[Neighbour]:
    """The k tracks nearest to `track_id` by cosine (the track itself excluded)."""
    if k < 1:
        raise QueryError(f"k must be >= 1 (got {k})")
    index = run.index_of()
    if track_id not in index:
        raise QueryError(f"unknown track id {track_id!r}: not in the run's vocabulary "
                         f"({len(run.ids):,} tracks)")
    v = l2_normalize(run.vectors)
    i = index[track_id]
    scores = v @ v[i]
    scores[i] = -np.inf
    k = min(k, len(run.ids) - 1)
    top = np.argpartition(-scores, k - 1)[:k] if k > 0 else np.zeros(0, np.int64)
    top = top[np.argsort(-scores[top], kind="stable")]
    names, artists = _track_labels(run)
    return [Neighbour(run.ids[j], float(scores[j]), names[j], artists[j]) for j in top]
