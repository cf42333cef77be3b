"""`dynplayer train-text`: fit the caption <-> playlist model on a run and write RUN_DIR/text/.

RUN_DIR/text/ (written to a temporary sibling, then swapped in whole):
  config.json        TextConfig, encoder fingerprint, vectors hash, corpus dir, training metrics
  model.npz          both projection heads (numpy, allow_pickle=False) and the logit scale
  ngram.npz          the fitted n-gram encoder (encoder = ngram only)
  joint.npy          float32 (P, e): training playlists' projected track means (joint space)
  captions.npy       float32 (P, d_text): training playlists' encoded captions (zero-shot space)
  playlists.npy      float32 (P, d): the search matrix of the configured retrieval, L2-normalised
  track_joint.npy    float32 (V, e): single tracks through the playlist head (direct retrieval)
  occurrences.npz    CSR (P, V) occurrence counts of the training playlists over the vocabulary
  pids.txt, captions.json, tracks.json   row labels (playlists; vocabulary track id, name,
                     artist, genres)
Encoded captions are cached in RUN_DIR/cache/text/, keyed by encoder fingerprint and texts.
"""

from __future__ import annotations

import io
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from dynplayer.config import to_dict
from dynplayer.data.corpus import TRAIN, VAL, Corpus, load_corpus
from dynplayer.errors import ArtifactError, ConfigError
from dynplayer.run import (
    Run,
    atomic_directory,
    atomic_save_npy,
    atomic_save_npy_blocks,
    atomic_write_bytes,
    atomic_write_json,
    load_run,
)
from dynplayer.text.config import project_blocks, projected_dim, text_epochs, val_sample
from dynplayer.text.encoders import ENCODERS, NgramEncoder, TextEncoder, encode_cached, make_encoder
from dynplayer.text.model import (
    CaptionPlaylistModel,
    TextConfig,
    clip_loss,
    head_to_numpy,
    track_loss,
)
from dynplayer.text.space import (
    compose_playlist_vectors,
    store_projection,
    vectors_hash,
    wordless,
)


@dataclass
class TextData:
    """A corpus aligned with a run's track vectors over the vocabulary tracks that have one."""

    corpus: Corpus
    vocab: np.ndarray  # track_idx of the columns
    track_vectors: np.ndarray  # float32 (V, d), L2-normalised
    counts: sp.csr_matrix  # (n_playlists, V) occurrence counts, every split, every occurrence
    captions: list[str]
    vectors_hash: str

    def usable(self, split: int) -> np.ndarray:
        """Playlists of `split` with a caption and at least one vocabulary track."""
        rows = self.corpus.playlists_in(split)
        has_tracks = np.diff(self.counts.indptr)[rows] > 0
        has_caption = np.array([bool(self.captions[p]) for p in rows], dtype=bool)
        return rows[has_tracks & has_caption]

    def searchable(self) -> np.ndarray:
        """The playlists search ranks: training playlists with at least one vocabulary track
        (one without tracks could only take a slot in the top-N and contribute nothing)."""
        rows = self.corpus.playlists_in(TRAIN)
        return rows[np.diff(self.counts.indptr)[rows] > 0]

    def track_mean(self, rows: np.ndarray, counts: sp.csr_matrix | None = None) -> np.ndarray:
        """Mean of the distinct tracks' vectors per playlist (unnormalised: its length matters)."""
        binary = (self.counts[rows] if counts is None else counts).copy()
        binary.data[:] = 1.0
        n = np.maximum(np.diff(binary.indptr), 1).astype(np.float32)
        return np.asarray(binary @ self.track_vectors, dtype=np.float32) / n[:, None]


def load_text_data(run: Run) -> TextData:
    corpus = load_corpus(run.corpus_dir)
    corpus.require_split()
    row_of = run.index_of()
    # Every corpus track the run has a vector for: the selected (trained) ones, plus any folded
    # in below the selection threshold (`train --long-tail`), so text search can reach those.
    vocab_all = np.flatnonzero([t in row_of for t in corpus.track_ids]).astype(np.int64)
    run_rows = np.array([row_of.get(corpus.track_ids[t], -1) for t in vocab_all], dtype=np.int64)
    have = run_rows >= 0
    if not have.any():
        raise ArtifactError(f"{run.path}: none of the corpus vocabulary has a track vector")
    vocab = vocab_all[have]
    counts = corpus.interaction_matrix(np.arange(corpus.n_playlists, dtype=np.int64),
                                       vocab=vocab, binary=False)
    rows = run_rows[have]
    # every run track, in the run's order (a run trained on this corpus): no copy of the table
    same = rows.shape[0] == run.vectors.shape[0] and bool(
        (rows == np.arange(rows.shape[0])).all())
    return TextData(corpus=corpus, vocab=vocab,
                    track_vectors=run.vectors if same else run.vectors[rows],
                    counts=counts, captions=corpus.captions(), vectors_hash=vectors_hash(run))


def build_encoder(name: str, data: TextData, state: Path | None = None) -> TextEncoder:
    if name not in ENCODERS:
        raise ConfigError(f"unknown text encoder {name!r} (known: {', '.join(ENCODERS)})")
    fit = [data.captions[p] for p in data.corpus.playlists_in(TRAIN)]
    return make_encoder(name, fit_texts=fit, state=state)


VAL_CHUNK = 2048  # validation queries scored at once


def _progress(msg: str) -> None:
    if sys.stderr.isatty():
        print(msg, file=sys.stderr, flush=True)


def fit_model(data: TextData, text_x: np.ndarray, cfg: TextConfig,
              val_text_x: np.ndarray | None = None,
              val_rows: np.ndarray | None = None) -> tuple[CaptionPlaylistModel, dict[str, Any]]:
    """Train on the training playlists; keep the epoch with the best validation Recall@10.

    text_x: encoded captions of `data.usable(TRAIN)`, row-aligned.
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    rows = data.usable(TRAIN)
    if rows.shape[0] < 2:
        raise ArtifactError("fewer than 2 training playlists with a caption and tracks")
    _, caption_ids = np.unique([data.captions[p] for p in rows], return_inverse=True)
    epochs = text_epochs(cfg, int(rows.shape[0]))
    model = CaptionPlaylistModel(text_x.shape[1], data.track_vectors.shape[1], cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, int(np.ceil(rows.shape[0] / cfg.batch_size)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, pct_start=0.1,
                                                total_steps=epochs * steps_per_epoch)
    tx = torch.from_numpy(np.ascontiguousarray(text_x, dtype=np.float32))
    cid = torch.from_numpy(caption_ids.astype(np.int64))
    tv = torch.from_numpy(np.ascontiguousarray(data.track_vectors, dtype=np.float32))
    base = data.counts[rows].tocoo()
    first_of_row = np.unique(base.row, return_index=True)[1]
    history: list[dict[str, float]] = []
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    t0 = time.perf_counter()
    for epoch in range(epochs):
        # Augment the playlist side: each playlist keeps a random 50-100% of its occurrences.
        keep_p = np.asarray(rng.uniform(cfg.track_keep_min, 1.0, rows.shape[0]))
        keep = rng.random(base.row.shape[0]) < keep_p[base.row]
        keep[first_of_row] = True  # never empty
        sub = sp.csr_matrix((base.data[keep], (base.row[keep], base.col[keep])),
                            shape=base.shape)
        px = torch.from_numpy(data.track_mean(rows, sub))
        model.train()
        order = torch.from_numpy(rng.permutation(rows.shape[0]))
        total = 0.0
        for start in range(0, rows.shape[0], cfg.batch_size):
            b = order[start:start + cfg.batch_size]
            if b.shape[0] < 2:
                continue
            t, p, scale = model(tx[b], px[b])
            losses = clip_loss(t, p, scale, cid[b])
            total_loss = losses["contrastive_loss"]
            if cfg.track_loss_weight > 0:
                targets = torch.from_numpy(sub[b.numpy()].toarray())
                losses.update(track_loss(t, model.encode_playlist(tv), targets,
                                         model.track_logit_scale))
                total_loss = total_loss + cfg.track_loss_weight * losses["text_to_track"]
            opt.zero_grad()
            total_loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            sched.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0.0, math.log(100.0))
                model.track_logit_scale.clamp_(0.0, math.log(100.0))
            total += float(losses["contrastive_loss"].detach()) * b.shape[0]
        rec: dict[str, float] = {"epoch": epoch + 1, "loss": total / rows.shape[0],
                                 "logit_scale": float(model.logit_scale.detach().exp())}
        if val_text_x is not None and val_rows is not None and val_rows.shape[0] > 1:
            rec["val_recall@10"] = _val_recall(model, data, val_text_x, val_rows)
            if best is None or rec["val_recall@10"] > best[0]:
                best = (rec["val_recall@10"], {k: v.clone() for k, v in
                                               model.state_dict().items()})
        history.append(rec)
        elapsed = time.perf_counter() - t0
        _progress(f"epoch {epoch + 1}/{epochs} loss {rec['loss']:.4f} "
                  f"val R@10 {rec.get('val_recall@10', float('nan')):.4f} "
                  f"({elapsed:.1f}s, ETA {elapsed / (epoch + 1) * (epochs - epoch - 1):.0f}s)")
    if best is not None:
        model.load_state_dict(best[1])
    model.eval()
    return model, {"history": history, "train_seconds": time.perf_counter() - t0,
                   "n_train_playlists": int(rows.shape[0]),
                   "best_val_recall@10": best[0] if best is not None else None}


@torch.no_grad()
def _val_recall(model: CaptionPlaylistModel, data: TextData, text_x: np.ndarray,
                rows: np.ndarray, chunk: int = 0) -> float:
    model.eval()
    t = model.encode_text(torch.from_numpy(text_x))
    p = model.encode_playlist(torch.from_numpy(data.track_mean(rows)))
    hits, chunk = 0, chunk or VAL_CHUNK
    for lo in range(0, t.shape[0], chunk):  # chunk x P similarities at a time, not P x P
        sims = t[lo:lo + chunk] @ p.T
        own = sims[torch.arange(sims.shape[0]), lo + torch.arange(sims.shape[0])][:, None]
        hits += int(((sims > own).sum(dim=1) < 10).sum())
    return hits / max(1, t.shape[0])


def train_text(run_dir: Path, cfg: TextConfig) -> dict[str, Any]:
    """Fit the text model on RUN_DIR's vectors and corpus; write RUN_DIR/text/ atomically."""
    if cfg.encoder not in ENCODERS:
        raise ConfigError(f"unknown text encoder {cfg.encoder!r} (known: {', '.join(ENCODERS)})")
    if cfg.retrieval not in ("joint", "caption", "hybrid"):
        raise ConfigError(f"retrieval must be joint, caption or hybrid, not {cfg.retrieval!r}")
    text_epochs(cfg, 0)  # epochs and playlist_budget: refused before anything is loaded
    # One thread: the heads are small, and two threads on a shared 2-core machine were 12x slower.
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    run = load_run(run_dir)
    data = load_text_data(run)
    cache = Path(run_dir) / "cache" / "text"
    encoder = build_encoder(cfg.encoder, data)
    train_rows = data.usable(TRAIN)
    val_rows = data.usable(VAL)
    val_rows = val_rows[val_sample(cfg, val_rows.shape[0])]
    searchable = data.searchable()
    t_enc = time.perf_counter()
    train_x = encode_cached(encoder, [data.captions[p] for p in train_rows], cache)
    val_x = encode_cached(encoder, [data.captions[p] for p in val_rows], cache)
    encode_seconds = time.perf_counter() - t_enc
    model, metrics = fit_model(data, train_x, cfg, val_x, val_rows)
    metrics["encode_seconds"] = encode_seconds
    del train_x, val_x  # the fit's: the artifacts encode what they store

    out = Path(run_dir) / "text"
    with atomic_directory(out) as tmp:
        write_artifacts(tmp, data, encoder, model, cfg, searchable, cache)
        metrics["total_seconds"] = time.perf_counter() - t_start
        meta = {"text": to_dict(cfg), "encoder_fingerprint": encoder.fingerprint(),
                "vectors_hash": data.vectors_hash, "corpus_dir": str(run.corpus_dir),
                "corpus_hash": data.corpus.manifest.get("content_hash"), "metrics": metrics}
        atomic_write_json(tmp / "config.json", meta)
        calibrate = bool(data.usable(VAL).size)
        # the calibration loads the searcher it calibrates: the training's corpus, vectors
        # and encoded captions go first (at 250k playlists they held 3 GB through it)
        del data, model, run, encoder
        if calibrate:  # how well queries match, calibrated on validation captions
            from dynplayer.text.confidence import write_calibration

            t_cal = time.perf_counter()
            metrics["confidence"] = write_calibration(run_dir, tmp).validation
            metrics["calibration_seconds"] = time.perf_counter() - t_cal
            metrics["total_seconds"] = time.perf_counter() - t_start
            atomic_write_json(tmp / "config.json", meta)
    return metrics


def write_artifacts(d: Path, data: TextData, encoder: TextEncoder, model: CaptionPlaylistModel,
                    cfg: TextConfig, rows: np.ndarray, cache: Path | None) -> None:
    """Everything `TextSearcher.load` needs, for the searchable playlists `rows`."""
    from dynplayer.text.model import project_numpy

    weights = {**head_to_numpy(model.text_head, "text"),
               **head_to_numpy(model.playlist_head, "playlist")}
    weights["logit_scale"] = np.array(float(model.logit_scale.detach()), dtype=np.float32)
    buf = io.BytesIO()
    np.savez(buf, **weights)  # type: ignore[arg-type]
    atomic_write_bytes(d / "model.npz", buf.getvalue())
    if isinstance(encoder, NgramEncoder):
        encoder.save(d / "ngram.npz")
    captions = [data.captions[p] for p in rows]
    joint = project_numpy(weights, "playlist", data.track_mean(rows))
    cap_x = encode_cached(encoder, captions, cache)
    # Playlists without tracks or caption stay searchable on the side they have.
    atomic_save_npy(d / "joint.npy", joint)
    atomic_save_npy(d / "captions.npy", cap_x)
    playlists = compose_playlist_vectors(joint, cap_x, cfg, wordless(captions))
    del joint
    atomic_save_npy(d / "playlists.npy", playlists)
    store_projection(d, playlists, weights, cap_x, cfg)  # what search would fit on every load
    # each array goes once written, and the tracks' side is written a block at a time: at 1M
    # playlists these held several GB side by side
    del playlists, cap_x
    tracks = data.track_vectors
    atomic_save_npy_blocks(d / "track_joint.npy",
                           (tracks.shape[0], projected_dim(weights, "playlist")), np.float32,
                           project_blocks(weights, "playlist", tracks))
    occ = data.counts[rows].tocsr()
    buf = io.BytesIO()
    np.savez(buf, data=occ.data.astype(np.float32), indices=occ.indices.astype(np.int32),
             indptr=occ.indptr.astype(np.int64), shape=np.array(occ.shape, dtype=np.int64))
    atomic_write_bytes(d / "occurrences.npz", buf.getvalue())
    atomic_write_bytes(d / "pids.txt",
                       ("\n".join(data.corpus.pids[p] for p in rows) + "\n").encode())
    atomic_write_json(d / "captions.json", captions)
    c = data.corpus
    atomic_write_json(d / "tracks.json", {
        "track_id": [c.track_ids[t] for t in data.vocab],
        "name": [c.track_names[t] for t in data.vocab],
        "artist": [c.artists[t] for t in data.vocab],
        "genres": [list(c.track_genres[t]) for t in data.vocab]})
