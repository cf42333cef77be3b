"""Evaluation at scale: EASE is skipped with one line when its matrices do not fit, and a
large split is evaluated on a seeded sample of its playlists."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynplayer.eval.budget import ease_fits, ease_memory_bytes
from dynplayer.eval.runner import EvalOptions, evaluate_run
from dynplayer.machine import available_memory_bytes
from test_eval_command import svd_run


def test_ease_memory_hand_computed() -> None:
    assert ease_memory_bytes(1_000, 100) == 20 * 100 * 100
    assert ease_memory_bytes(10, 100) == 16 * 100 + 4 * 1000 + 8 * 10_000
    # The MPD at 1M playlists with its 113k selected tracks: ~238 GiB, never on 24 GB.
    assert ease_memory_bytes(750_000, 113_000) / 2**30 == pytest.approx(237.8, abs=0.1)
    assert available_memory_bytes() > 0
    ok, why = ease_fits(750_000, 113_000, available=24 * 2**30)
    assert not ok
    assert why == ("EASE skipped: its 113,000 x 113,000 item matrices need 237.8 GiB, more "
                   "than half of the 24.0 GiB available")
    assert ease_fits(5_303, 10_087, available=24 * 2**30) == (True, "")


@pytest.fixture(scope="module")
def run_dir(synthetic_corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return svd_run(synthetic_corpus_dir, tmp_path_factory.mktemp("run") / "svd")


def test_ease_is_skipped_with_one_line_when_memory_is_short(run_dir: Path) -> None:
    lines: list[str] = []
    res = evaluate_run(run_dir, EvalOptions(peers=["popularity", "ease"], hubness=False,
                                            probe=False, threads=1, memory_bytes=1000),
                       log=lines.append, write=False)
    assert "ease" not in res["methods"] and "popularity" in res["methods"]
    assert res["peers"]["ease"]["skipped"].startswith("EASE skipped: its ")
    assert sum(line.startswith("EASE skipped") for line in lines) == 1
    full = evaluate_run(run_dir, EvalOptions(peers=["ease"], hubness=False, probe=False,
                                             threads=1), write=False)
    assert "ease" in full["methods"]


def test_large_split_is_sampled(run_dir: Path) -> None:
    whole = evaluate_run(run_dir, EvalOptions(hubness=False, probe=False), write=False)
    n = whole["split"]["n_playlists"]
    assert n > 40 and "sampled_from" not in whole["split"]
    part = evaluate_run(run_dir, EvalOptions(hubness=False, probe=False, max_playlists=40),
                        write=False)
    assert part["split"]["n_playlists"] == 40 and part["split"]["sampled_from"] == n
    assert f"40 of its {n:,} playlists" in part["split"]["source"]
    again = evaluate_run(run_dir, EvalOptions(hubness=False, probe=False, max_playlists=40),
                         write=False)
    assert again["methods"]["dynplayer"] == part["methods"]["dynplayer"]  # seeded
