"""`dynplayer bench scale` end to end at a toy size, and its growth exponents by hand."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dynplayer.cli import app
from dynplayer.scale import (
    STAGES,
    _cli,
    _train_killed_and_resumed,
    growth,
    run_stage,
    table,
)


def test_growth_exponent_hand_computed() -> None:
    # 10x the playlists: 10x the time is exponent 1, 100x is 2; values near 0 give None.
    assert growth([1000, 10_000, 100_000], [2.0, 20.0, 2000.0]) == [1.0, 2.0]
    assert growth([100, 400], [0.01, 5.0]) == [None]
    assert growth([100, 400], [3.0, 6.0]) == [0.5]


COMMON = ["--set", "epochs=1", "--set", "seeds=1", "--set", "dim=16",
          "--text-set", "encoder=ngram", "--text-set", "epochs=1"]


def _report(res: Any) -> dict[str, Any]:
    assert res.exit_code == 0, res.output
    out: dict[str, Any] = json.loads(res.stdout[res.stdout.index("{"):])
    return out


@pytest.mark.db
@pytest.mark.timeout(900)
def test_bench_scale_runs_every_stage_at_two_sizes(tmp_path: Path) -> None:
    work = tmp_path / "scale"
    report = _report(CliRunner().invoke(app, [
        "bench", "scale", "--work", str(work), "--playlists", "300,600", "--json", "--keep",
        *COMMON]))
    assert [r["playlists"] for r in report["sizes"]] == [300, 600]
    for row in report["sizes"]:
        assert set(row["stages"]) == set(STAGES)
        for fig in row["stages"].values():
            assert fig["wall_s"] > 0 and fig["peak_rss_mb"] > 50 and fig["disk_bytes"] > 0
        assert row["corpus"]["playlists"] == row["playlists"]
        assert row["mean_length"] > 20  # tiny catalogues run out of distinct tracks
        assert "serve" not in row  # only with --serve
    assert len(report["growth"]["train"]["wall_s"]) == 1
    assert (work / "scale.png").stat().st_size > 1000
    assert json.loads((work / "scale.json").read_text())["sizes"][1]["playlists"] == 600
    # each stage's figures are written as it ends, for --from-stage
    stages_json = work / "p300" / "stages.json"
    assert json.loads(stages_json.read_text())["stages"] == report["sizes"][0]["stages"]

    # --reuse keeps the measured sizes (same settings) and runs only the missing ones
    mtime = stages_json.stat().st_mtime_ns
    kept = _report(CliRunner().invoke(app, [
        "bench", "scale", "--work", str(work), "--playlists", "300,600", "--json", "--reuse",
        "--keep", *COMMON]))
    assert [r.get("reused") for r in kept["sizes"]] == [True, True]
    assert kept["growth"] == report["growth"]
    assert stages_json.stat().st_mtime_ns == mtime  # nothing was run again
    other = CliRunner().invoke(app, [
        "bench", "scale", "--work", str(work), "--playlists", "300", "--reuse",
        "--set", "epochs=2"])
    assert other.exit_code != 0
    assert "measured with other settings" in str(other.exception or other.output)

    # --from-stage goes on in a kept size with the earlier stages as measured (a 2-hour
    # benchmark survives one failed stage); --serve then measures the store the pipeline
    # indexed, as `bench serve --store` does, outside the pipeline's total.
    again = _report(CliRunner().invoke(app, [
        "bench", "scale", "--work", str(work), "--playlists", "300", "--json", "--keep",
        "--from-stage", "index", "--serve", "--serve-duration", "1", *COMMON]))
    row, before = again["sizes"][0], report["sizes"][0]
    assert row["resumed_from"] == "index" and row["measured_at"] == before["measured_at"]
    for stage in ("prepare", "train", "train-text"):  # not run again: as measured before
        assert row["stages"][stage] == before["stages"][stage]
    assert row["stages"]["index"]["wall_s"] > 0
    assert row["total_wall_s"] == round(sum(s["wall_s"] for s in row["stages"].values()), 1)
    serve = row["serve"]
    for what in ("similar", "continue", "text"):
        assert 0 <= serve["overlap"][what]["min"] <= serve["overlap"][what]["mean"] <= 1
    assert serve["one_client"]["continue"]["p50_ms"] > 0
    assert serve["one_client"]["continue"]["errors"] == 0
    assert serve["one_client"]["similar"]["errors"] == 0  # with its latency and its overlap
    assert serve["shared_buffers"]
    similar_row = next(r for r in table(again).splitlines() if r.startswith("| 300 | similar |"))
    assert similar_row.endswith(f"| {serve['overlap']['similar']['mean']} / "
                                f"{serve['overlap']['similar']['min']} |")
    assert "| 300 | continue | " in table(again)

    for args, message in (
            (["--from-stage", "serve"], "--from-stage serve needs --serve"),
            (["--from-stage", "fit"], "expected one of prepare, train, train-text, index, serve"),
            (["--from-stage", "train", "--playlists", "400"], "no files of 400 playlists"),
            (["--from-stage", "train", "--reuse"], "choose one"),
            (["--serve", "--serve-duration", "0"], "--serve-duration must be from 1 to 300")):
        bad = CliRunner().invoke(app, ["bench", "scale", "--work", str(work), "--playlists",
                                       "300", *COMMON, *args])
        assert bad.exit_code != 0
        assert message in str(bad.exception or bad.output), (args, bad.output)

    # without --keep a size's files are removed once its figures are taken
    last = _report(CliRunner().invoke(app, [
        "bench", "scale", "--work", str(work), "--playlists", "600", "--json",
        "--from-stage", "index", *COMMON]))
    assert last["sizes"][0]["stages"]["train"] == report["sizes"][1]["stages"]["train"]
    assert not (work / "p600").exists()


def test_bad_sizes_are_one_line() -> None:
    res = CliRunner().invoke(app, ["bench", "scale", "--work", "/tmp/x", "--playlists", "a,b"])
    assert res.exit_code != 0
    assert "expected comma-separated integers" in str(res.exception or res.output)
    res = CliRunner().invoke(app, ["bench", "scale", "--work", "/tmp/x", "--playlists", "300",
                                   "--kill-train", "0"])
    assert res.exit_code != 0
    assert "--kill-train: seconds must be > 0" in str(res.exception or res.output)


def test_run_stage_kills_after_the_given_seconds(tmp_path: Path) -> None:
    fig = run_stage([sys.executable, "-c", "import time; time.sleep(60)"], env=dict(os.environ),
                    log=tmp_path / "sleep.log", kill_after=0.5)
    assert fig["killed"] is True and fig["wall_s"] < 30
    done = run_stage([sys.executable, "-c", "pass"], env=dict(os.environ),
                     log=tmp_path / "ok.log", kill_after=60)
    assert "killed" not in done


@pytest.mark.timeout(300)
def test_killed_training_is_resumed_to_a_complete_run(tmp_path: Path,
                                                      synthetic_corpus_dir: Path) -> None:
    # Killed long before it can finish (10 ms: not even its imports are done), then
    # `train --resume` completes the run; the report says what the killed process left.
    run = tmp_path / "run"
    argv = [*_cli(), "train", str(synthetic_corpus_dir), "--out", str(run),
            "--set", "epochs=2", "--set", "seeds=1", "--set", "dim=16"]
    fig, info = _train_killed_and_resumed(argv, env=dict(os.environ), d=tmp_path, run=run,
                                          kill_after=0.01, say=lambda m: None)
    assert info["killed"] is True
    assert "vectors.npy" not in info["files_left"]  # nothing half-written looks like a run
    assert info["resumed_run"]["wall_s"] > 0
    assert fig["wall_s"] >= info["resumed_run"]["wall_s"]
    assert (run / "vectors.npy").exists() and (run / "metrics.json").exists()
    assert json.loads((run / "metrics.json").read_text())["n_items"] > 0

