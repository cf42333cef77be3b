"""Data-parallel training: 2 CPU processes under torchrun (gloo) follow the single process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dynplayer.config import to_dict
from dynplayer.train.config import TrainConfig
from dynplayer.train.loop import train_run

CFG = TrainConfig(objective="mix", init="svd", dim=32, batch_size=64, epochs=3, threads=1, seed=5,
                  pairwise_batch=256, seeds=1,
                  device="cpu")

SCRIPT = """
import json, sys
from pathlib import Path
from dynplayer.config import from_dict
from dynplayer.train.config import TrainConfig
from dynplayer.train.loop import train_run
cfg = from_dict(TrainConfig, json.loads(sys.argv[3]))
train_run(Path(sys.argv[1]), Path(sys.argv[2]), cfg, progress=False)
"""


@pytest.mark.timeout(300)
def test_two_processes_follow_one(tmp_path: Path, synthetic_corpus_dir: Path) -> None:
    single = train_run(synthetic_corpus_dir, tmp_path / "one", CFG, progress=False)
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(synthetic_corpus_dir), str(tmp_path / "two"),
           json.dumps(to_dict(CFG))]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=280)
    assert out.returncode == 0, out.stderr[-2000:]
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two["world_size"] == 2 and one["world_size"] == 1
    # Each process takes every other playlist of the same set batch (and the same whole pair
    # batch) and gradients are averaged, so the loss per epoch matches the single process up to
    # float summation order.
    loss_one = np.array([h["loss"] for h in one["history"]])
    loss_two = np.array([h["loss"] for h in two["history"]])
    assert loss_one.shape == loss_two.shape == (3,)
    np.testing.assert_allclose(loss_two, loss_one, rtol=1e-3)
    assert abs(two["val_recall@10"] - one["val_recall@10"]) < 0.02
    vec_two = np.load(tmp_path / "two" / "vectors.npy")
    cos = (vec_two * single.vectors).sum(1)
    assert np.median(cos) > 0.99


def test_config_rejects_sparse_without_sparse_adam() -> None:
    from dynplayer.errors import ConfigError
    from dynplayer.train.config import validate

    with pytest.raises(ConfigError, match="sparse_adam"):
        validate(replace(CFG, objective="pairwise", sparse=True))
