"""The model version: a content hash of the run, remembered outside the run directory."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from dynplayer.run import run_version


def _run(d: Path, rows: int = 4) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / "vectors.npy", np.arange(rows * 3, dtype=np.float32).reshape(rows, 3))
    (d / "ids.txt").write_text("\n".join(f"t{i}" for i in range(rows)) + "\n")
    return d


def test_the_memo_gives_the_hash_and_follows_every_change(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNPLAYER_DATA_DIR", str(tmp_path / "data"))
    run = _run(tmp_path / "run")
    before = sorted(p.name for p in run.rglob("*"))
    first = run_version(run)
    assert sorted(p.name for p in run.rglob("*")) == before  # nothing written into the run
    assert list((tmp_path / "data" / "cache" / "run-versions").iterdir())
    assert run_version(run) == first
    # the memo is only a memo: the same files hash the same without it
    monkeypatch.setenv("DYNPLAYER_DATA_DIR", str(tmp_path / "other"))
    assert run_version(run) == first
    # a changed file (other size, or the same size written later) is hashed again
    np.save(run / "vectors.npy", np.ones((4, 3), np.float32))
    os.utime(run / "vectors.npy", ns=(1, 1))
    changed = run_version(run)
    assert changed != first
    (run / "text").mkdir()
    (run / "text" / "model.npz").write_bytes(b"x")
    assert run_version(run) not in (first, changed)
    # an unreadable memo is ignored
    for f in (tmp_path / "other" / "cache" / "run-versions").iterdir():
        f.write_text("{not json")
    assert run_version(run) == run_version(run)
