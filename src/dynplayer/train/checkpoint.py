"""Checkpoints: the run's state, model, optimizer, RNG and resolved config in one file, written
to a temp file and renamed, and the check that a resumed run continues the same training."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dynplayer.config import to_dict
from dynplayer.errors import ArtifactError
from dynplayer.run import atomic_write_stream
from dynplayer.train.config import TrainConfig


@dataclass
class TrainState:
    """Where a run stands; saved in every checkpoint."""

    member: int = 0  # which seed of an ensemble is training
    epoch: int = 0  # epochs completed by this member
    step: int = 0
    best_recall: float = -1.0
    best_ndcg: float = 0.0
    best_epoch: int = 0
    bad_evals: int = 0
    done: bool = False  # this member stopped (early stop or last epoch)
    history: list[dict[str, Any]] = field(default_factory=list)
    members: list[dict[str, Any]] = field(default_factory=list)  # finished members' summaries
    train_seconds: float = 0.0
    pairs: int = 0
    playlists: int = 0


def checkpoint_path(out: Path) -> Path:
    return out / "checkpoint.pt"


def save_checkpoint(out: Path, cfg: TrainConfig, meta: dict[str, Any],
                    trainer_state: dict[str, Any] | None, state: TrainState,
                    member_vectors: list[np.ndarray],
                    member_parts: list[list[np.ndarray]] | None = None) -> None:
    """Model + optimizer + RNG + state + resolved config, written to a temp file and renamed.
    `trainer_state` is None between ensemble members (the next member starts fresh).

    Only tensors and plain values (dict, list, tuple, str, number, bool, None) are saved, numpy
    arrays as tensors, so `load_checkpoint` reads it with `weights_only=True`: no pickle."""
    packed = _pack({"config": to_dict(cfg), "meta": meta, "state": dataclasses.asdict(state),
                    "trainer": trainer_state, "member_vectors": member_vectors,
                    "member_parts": member_parts or []})
    # straight to the temp file: through a BytesIO and its getvalue() the checkpoint was held
    # twice more in memory (at 1M playlists, 1.98M tracks: the stage's peak, 16.5 GiB)
    atomic_write_stream(checkpoint_path(out), lambda fh: torch.save(packed, fh))


def load_checkpoint(out: Path) -> dict[str, Any] | None:
    """The checkpoint `save_checkpoint` wrote, read without unpickling arbitrary objects
    (`weights_only=True`): a file holding anything else (a foreign or tampered checkpoint, one
    from before this format) is refused with an ArtifactError, never executed."""
    path = checkpoint_path(out)
    if not path.exists():
        return None
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated file cannot happen (atomic), a foreign one can
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(f"{path}: not a checkpoint this version of dynplayer wrote, refused "
                            f"without loading it ({reason[:200]}); train into a new directory "
                            "or drop --resume") from exc
    if not isinstance(raw, dict) or not {"config", "meta", "state", "trainer",
                                         "member_vectors"} <= set(raw):
        raise ArtifactError(f"{path}: not a dynplayer training checkpoint (unexpected "
                            "contents); train into a new directory or drop --resume")
    ckpt: dict[str, Any] = _unpack(raw)
    return ckpt


_ARRAY = "__numpy_array__"  # marks a numpy array saved as a tensor


def _pack(obj: Any) -> Any:
    """numpy arrays -> {_ARRAY: tensor}, numpy scalars -> Python numbers, recursively."""
    if isinstance(obj, np.ndarray):  # shared, not copied, where torch can read it as it is
        keep = obj.flags.c_contiguous and obj.flags.writeable and obj.dtype.isnative
        return {_ARRAY: torch.from_numpy(obj if keep else np.array(
            obj, dtype=obj.dtype.newbyteorder("="), order="C", copy=True))}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _pack(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_pack(v) for v in obj)
    return obj


def _unpack(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {_ARRAY} and isinstance(obj[_ARRAY], torch.Tensor):
            return obj[_ARRAY].numpy()
        return {k: _unpack(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unpack(v) for v in obj)
    return obj


RUNTIME_KEYS = ("device", "threads")  # may change on resume: where, not what, is trained


def decisive(config: dict[str, Any]) -> dict[str, Any]:
    """The keys that decide the result; a key a checkpoint predates counts at its default
    (a newer version's setting that it leaves at the default changes nothing)."""
    from dynplayer.train.config import TrainConfig

    full = {**to_dict(TrainConfig()), **config}
    return {k: v for k, v in full.items() if k not in RUNTIME_KEYS}
