"""The training configuration of the track embedding model: one flat, frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dynplayer.config import apply_overrides, flatten, load_toml, parse_set_options
from dynplayer.errors import ConfigError

OBJECTIVES = ("set", "pairwise", "mix")
SET_SOFTMAX = ("auto", "full", "sampled")
OPTIMIZERS = ("auto", "adamw", "adam", "sparse_adam")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; stored resolved in config.json and checkpoints.

    objective: "set" (anchor = normalised mean of a random subset of a playlist's tracks, full
    softmax over the vocabulary; matches how a playlist is scored at inference), "pairwise"
    (the reference: anchor track, one positive within `window`, in-batch negatives, symmetric
    InfoNCE), or "mix" (the default: the set term plus the pairwise term on `pairwise_batch`
    random pairs, weighted by `mix_weight`). The defaults were chosen on the validation split of
    the MPD corpus (docs/benchmarks.md).
    """

    objective: str = "mix"
    dim: int = 128
    init: str = "svd"  # "svd" (item factors of the training matrix) or "random" (normal)
    temperature: float = 0.07
    learnable_temperature: bool = False
    lr: float = 5e-3
    epochs: int = 30  # passes over the training playlists (set) or occurrences (pairwise)
    steps: int = 0  # if > 0, overrides epochs: total optimiser steps
    batch_size: int = 512  # playlists per step (set) or pairs per step (pairwise)
    window: int = 10  # positive within this many positions (pairwise)
    uniformity: float = 0.0  # weight u of the uniformity loss (reference: 0 / 0.5 / 1.0)
    uniformity_t: float = 2.0
    logq: bool = False  # subtract log sampling probability from in-batch logits (pairwise)
    mask_false_negatives: bool = True
    sparse: bool = False  # sparse embedding gradients (needs optimizer = "sparse_adam")
    # "auto": "sparse_adam" with sparse gradients (only the rows a step touches are updated)
    # when more than `sparse_above` tracks are trained and the step scores sampled rows (the
    # pairwise term, or a sampled set term) in one process (not under DDP), else "adamw".
    # AdamW updates every row of the table on every step: at 494k tracks 0.65 of a 1.31 s
    # step, and its dense gradient most of the backward's 0.40 s; sparse, a step took 0.53 s
    # (docs/experiments.md).
    optimizer: str = "auto"
    sparse_above: int = 200_000
    weight_decay: float = 0.0
    warmup: float = 0.05  # share of steps with linear warm-up, then cosine decay to lr_min
    lr_min: float = 0.05  # final lr as a share of lr
    subset_min: float = 0.2  # context share of a playlist's tracks (set): uniform in [min, max]
    subset_max: float = 0.8
    # Share of the set term's playlists whose context is their first tracks in playlist order
    # (as the field's first-n continuations ask) rather than a random subset.
    prefix: float = 0.0
    mix_weight: float = 0.5
    pairwise_batch: int = 2048  # pairs per step of the pairwise term when objective = "mix"
    # Train this many seeds (seed, seed + 1, ...); the run's vectors are the members' side by
    # side, so the exported dimension is dim * seeds (256 by default). Two seeds: +0.005 val R@10
    # on the MPD slices (5,303 training playlists).
    seeds: int = 2
    # ... but only for a training set of fewer than this many playlists (0: always): above it
    # one member is trained (dimension `dim`). The second member's gain shrinks with the corpus
    # (validation Recall@10: +1.6% on the MPD slices, +0.17% at 250k synthetic playlists, none
    # at 1M) while it doubles training time and the index's vector bytes.
    ensemble_below: int = 100_000
    # Shared parts of a track's vector, a comma list of "artist" and "album" ("" = none): a
    # track's vector is its own row plus its artist's (and album's) row, so a rare track borrows
    # its artist's position and an artist row places a track no playlist holds yet
    # (RUN_DIR/parts/). Tracks without the metadata use their own row only. "artist" by
    # default: +0.7% / +1.0% R-precision / NDCG of the field protocol on MPD validation with
    # the default vocabulary at min_playlists 2, and what lets min_playlists 1 win (docs/
    # experiments.md); the slices have no album ids.
    shared: str = "artist"
    seed: int = 0
    device: str = "auto"
    # torch CPU threads; 0 = torch's default (one per core). 1 by default: on a shared 2-core
    # machine 2 threads ran a step 2-8x slower than 1 (spinning workers), and alone they gain
    # less than 2x.
    threads: int = 1
    patience: int = 5  # evaluations without a better validation Recall@10 before stopping
    eval_every: int = 1  # epochs between validation evaluations
    # if > 0, select epochs on at most this many validation playlists (the first of the split
    # in corpus order; the split is drawn at random): the MPD slices have 707; at 1M the 100,000
    # would cost a full scoring pass over the vocabulary per epoch
    eval_playlists: int = 10_000
    # ... and at most this many (playlist, track) scores per evaluation: a whole-catalogue
    # vocabulary of ~1M tracks at 1M playlists is then selected on 2,000 validation playlists
    # (a full pass over 10,000 took minutes per epoch); the MPD slices keep all 707
    eval_scores: int = 2_000_000_000
    checkpoint_every: int = 1  # epochs between checkpoints
    # The set term's softmax: "full" (every vocabulary item), "sampled" (the batch's targets
    # plus `set_negatives` uniform negatives, log-Q corrected: cost batch x candidates, not
    # batch x vocabulary), or "auto": sampled when the vocabulary has more than
    # `sampled_above` items (measured: no gain at 10k items, 2.7x faster at 30k).
    set_softmax: str = "auto"
    sampled_above: int = 20_000
    set_negatives: int = 4096
    # Epochs are capped so one member sees at most this many training playlists
    # (floor(budget / training playlists), at least `min_epochs`); 0 = no cap. The MPD slices
    # (5,303 training playlists) stay at `epochs`; 250k playlists get 5, 1M playlists one.
    playlist_budget: int = 1_000_000
    min_epochs: int = 1
    # After training, fold in vectors for the tracks below the selection threshold that occur in
    # >= long_tail_min_playlists training playlists (dynplayer.update.longtail), appended after
    # the trained rows. Off by default: on MPD validation (`dynplayer bench foldin`) no setting
    # raised Recall@10 over all of a playlist's tracks by more than noise without lowering it
    # on the usual held-out targets (docs/experiments.md).
    long_tail: bool = False
    long_tail_min_playlists: int = 10
    foldin_method: str = "steps"  # context | cooc | pmi | steps (dynplayer.update.foldin)


PARTS = ("artist", "album")


def shared_parts(cfg: TrainConfig) -> list[str]:
    """The shared parts `cfg.shared` names, in order."""
    return [p.strip() for p in cfg.shared.split(",") if p.strip()]


def validate(cfg: TrainConfig) -> TrainConfig:
    """Reject values that cannot train, each with one line naming the key."""
    def bad(key: str, why: str) -> ConfigError:
        return ConfigError(f"config key '{key}': {why} (got {getattr(cfg, key)!r})")

    if cfg.objective not in OBJECTIVES:
        raise bad("objective", f"must be one of {', '.join(OBJECTIVES)}")
    if cfg.optimizer not in OPTIMIZERS:
        raise bad("optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
    if cfg.init not in ("random", "svd"):
        raise bad("init", "must be random or svd")
    if cfg.set_softmax not in SET_SOFTMAX:
        raise bad("set_softmax", f"must be one of {', '.join(SET_SOFTMAX)}")
    if cfg.device not in DEVICES:
        raise bad("device", f"must be one of {', '.join(DEVICES)}")
    if cfg.sparse and cfg.optimizer != "sparse_adam":
        raise bad("optimizer", "sparse = true needs optimizer = sparse_adam")
    if cfg.sparse_above < 0:
        raise bad("sparse_above", "must be >= 0")
    if cfg.optimizer == "sparse_adam" and not cfg.sparse:
        raise bad("sparse", "optimizer = sparse_adam needs sparse = true")
    if cfg.sparse and cfg.objective != "pairwise" and cfg.set_softmax == "full":
        raise bad("sparse", "sparse gradients only pay off for the pairwise objective or a "
                            "sampled set term (set_softmax = auto or sampled)")
    for key in ("dim", "batch_size", "window", "seeds", "eval_every", "checkpoint_every",
                "pairwise_batch", "set_negatives", "min_epochs"):
        if getattr(cfg, key) < 1:
            raise bad(key, "must be >= 1")
    for key in ("temperature", "lr", "uniformity_t"):
        if getattr(cfg, key) <= 0:
            raise bad(key, "must be > 0")
    if cfg.long_tail_min_playlists < 1:
        raise bad("long_tail_min_playlists", "must be >= 1")
    if cfg.foldin_method not in ("context", "cooc", "pmi", "steps"):
        raise bad("foldin_method", "must be one of context, cooc, pmi, steps")
    bad_parts = [p for p in shared_parts(cfg) if p not in PARTS]
    if bad_parts:
        raise bad("shared", f"must be a comma list of {', '.join(PARTS)}")
    if cfg.epochs < 1 and cfg.steps < 1:
        raise bad("epochs", "epochs or steps must be >= 1")
    if not 0 < cfg.subset_min <= cfg.subset_max < 1:
        raise bad("subset_min", "need 0 < subset_min <= subset_max < 1")
    if not 0 <= cfg.prefix <= 1:
        raise bad("prefix", "must be in [0, 1]")
    if not 0 <= cfg.warmup < 1:
        raise bad("warmup", "must be in [0, 1)")
    for key in ("playlist_budget", "sampled_above", "ensemble_below"):
        if getattr(cfg, key) < 0:
            raise bad(key, "must be >= 0")
    if cfg.uniformity < 0 or cfg.weight_decay < 0 or cfg.mix_weight < 0:
        raise bad("uniformity", "weights must be >= 0")
    return cfg


def load_train_config(file: Path | None = None, sets: list[str] | None = None,
                      base: TrainConfig | None = None) -> TrainConfig:
    """Defaults <- TOML file (flat, or a [train] table) <- `--set key=value` overrides.

    `train.` prefixes in `--set` are accepted; an unknown key is a ConfigError naming it.
    """
    cfg = base or TrainConfig()
    if file is not None:
        table = load_toml(file)
        if isinstance(table.get("train"), dict):
            table = table["train"]
        cfg = apply_overrides(cfg, flatten(table))
    overrides = {k.removeprefix("train."): v for k, v in parse_set_options(sets).items()}
    return validate(apply_overrides(cfg, overrides))
