"""A newcomer's wrong arguments: every command says what is wrong in one line (exit 2), checks
its arguments before loading a model, and keeps one answer per question; plus the small
wording and file-mode faults a first hour ran into."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dynplayer.errors import ConfigError


def dynplayer(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dynplayer.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def one_line_error(done: subprocess.CompletedProcess[str], message: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and done.stdout == "", (done.stdout, done.stderr)
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert message in done.stderr, done.stderr


@pytest.mark.parametrize("args", [
    ["serve", "/nonexistent/run"],  # the default pgvector backend: was a traceback, exit 1
    ["serve", "/nonexistent/run", "--backend", "exact"],
    ["index", "/nonexistent/run"],  # printed a text-model note first
    ["search", "/nonexistent/run", "jazz"],  # said "no text model"
    ["similar", "/nonexistent/run", "hey jude"],
    ["recommend", "/nonexistent/run", "hey jude"],
])
def test_a_missing_run_directory_is_one_line(args: list[str]) -> None:
    one_line_error(dynplayer(*args), "/nonexistent/run: run directory not found")


@pytest.fixture
def broken_models(track_run_dir: Path, copy_run: Any, tmp_path: Path) -> Path:
    """A run whose text model and ranker cannot be loaded: a command that loads before it
    checks its arguments fails on them instead of naming the bad argument."""
    run = copy_run(track_run_dir, tmp_path / "run")
    (run / "text").mkdir()
    (run / "ranker").mkdir()
    (run / "ranker" / "manifest.json").write_text("not json")
    return run


@pytest.mark.parametrize("args, message", [
    (["search", "RUN", "jazz", "-k", "100000"], "k must be an integer from 1 to 500, got 100000"),
    (["search", "RUN", "jazz", "--set", "top_playlists=abc"],
     "cannot read 'abc' as an integer"),
    (["similar", "RUN", "x", "-k", "0"], "k must be an integer from 1 to 500, got 0"),
    (["recommend", "RUN", "qqq-no-such-track"], "none of the 1 seeds is a track id or name"),
])
def test_arguments_are_checked_before_anything_is_loaded(broken_models: Path, args: list[str],
                                                         message: str) -> None:
    one_line_error(dynplayer(*[str(broken_models) if a == "RUN" else a for a in args]), message)


def test_an_unknown_seed_is_refused_before_the_vectors_are_read(track_run_dir: Path,
                                                                copy_run: Any,
                                                                tmp_path: Path) -> None:
    """`recommend` resolves its seeds from the names alone: with vectors.npy unreadable, an
    unknown seed still gets its own error, not one about the vectors."""
    run = copy_run(track_run_dir, tmp_path / "run")
    (run / "vectors.npy").write_bytes(b"not a numpy file")
    one_line_error(dynplayer("recommend", str(run), "qqq-no-such-track"),
                   "none of the 1 seeds is a track id or name")


def test_a_damaged_run_config_is_one_line_naming_it(track_run_dir: Path, copy_run: Any,
                                                    tmp_path: Path) -> None:
    run = copy_run(track_run_dir, tmp_path / "run")
    (run / "config.json").write_text("not json")
    for args in (["recommend", str(run), "qqq-no-such-track"], ["similar", str(run), "x"]):
        one_line_error(dynplayer(*args), f"{run / 'config.json'}: unreadable run config")


def test_a_blank_query_line_is_an_error_naming_it(serve_run_dir: Path, tmp_path: Path) -> None:
    """`search --queries FILE --jsonl` answers line n on output line n: a blank line would shift
    every later answer, so it is refused (nothing is printed)."""
    queries = tmp_path / "queries.txt"
    queries.write_text("rainy day jazz\n\nheavy metal\n")
    one_line_error(dynplayer("search", str(serve_run_dir), "--queries", str(queries), "--jsonl"),
                   f"{queries}:2: the query is empty")
    queries.write_text("rainy day jazz\nheavy metal\n")
    done = dynplayer("search", str(serve_run_dir), "--queries", str(queries), "--jsonl")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["query"] for line in done.stdout.splitlines()] == \
        ["rainy day jazz", "heavy metal"]


def test_a_bad_config_value_names_its_type_as_people_do() -> None:
    from dynplayer.config import resolve
    from dynplayer.train.config import TrainConfig

    with pytest.raises(ConfigError, match=r"^config key 'epochs': cannot read 'abc' as an "
                                          r"integer$"):
        resolve(TrainConfig(), None, ["epochs=abc"])
    with pytest.raises(ConfigError, match="cannot read 'hot' as a number"):
        resolve(TrainConfig(), None, ["temperature=hot"])


def test_demo_help_names_every_stage() -> None:
    done = dynplayer("demo", "--help")
    assert done.returncode == 0 and "ranker" in done.stdout, done.stdout


def test_directories_swapped_in_get_the_usual_mode(tmp_path: Path) -> None:
    """A corpus (or run part) is built in a temporary directory and renamed into place; it must
    not keep mkdtemp's 0700, which other users of the machine cannot read."""
    from dynplayer.run import atomic_directory

    old = os.umask(0o022)
    try:
        with atomic_directory(tmp_path / "corpus") as tmp:
            (tmp / "x").write_text("x")
        assert (tmp_path / "corpus").stat().st_mode & 0o777 == 0o755
        (tmp_path / "run").mkdir(mode=0o750)
        (tmp_path / "run").chmod(0o750)
        with atomic_directory(tmp_path / "run") as tmp:  # replacing one keeps its mode
            (tmp / "y").write_text("y")
        assert (tmp_path / "run").stat().st_mode & 0o777 == 0o750
    finally:
        os.umask(old)


def test_prepare_writes_a_readable_corpus(synthetic_corpus: Any, tmp_path: Path) -> None:
    from dynplayer.data.corpus import save_corpus

    old = os.umask(0o022)
    try:
        save_corpus(synthetic_corpus, tmp_path / "corpus")
    finally:
        os.umask(old)
    assert (tmp_path / "corpus").stat().st_mode & 0o777 == 0o755


def test_bench_cli_times_fresh_processes_against_the_targets(serve_run_dir: Path) -> None:
    """`dynplayer bench cli`: the cases a user runs (names of the run's most played tracks,
    each resolving to that track), timed in fresh processes; a case that does not end as
    expected stops the benchmark (a refusal must be refused, a query answered)."""
    from dynplayer.clibench import Case, default_cases, markdown, run_cli_bench
    from dynplayer.serve.resolve import TrackResolver
    from dynplayer.store.catalog import track_catalog

    cases = default_cases(serve_run_dir)
    kinds = [c.kind for c in cases]
    assert kinds.count("refused") >= 3 and {"similar", "search", "recommend"} <= set(kinds)
    seeds = next(c for c in cases if c.kind == "recommend").args[2:-2]
    cat = track_catalog(serve_run_dir)
    resolver = TrackResolver(cat.track_ids, cat.names, cat.artists, cat.popularity)
    top = sorted(cat.popularity.tolist(), reverse=True)[:10]
    assert len(seeds) == 3 and all(
        int(cat.popularity[resolver.resolve(s).row]) in top for s in seeds)
    picked = [c for c in cases if c.kind in ("floor", "refused")][:3]
    result = run_cli_bench(picked, repeat=1, echo=lambda _m: None)
    rows = result["rows"]
    assert [r["command"] for r in rows] == [c.label for c in picked]
    assert all(r["wall_p50_s"] > 0 and r["cpu_p50_s"] >= 0 for r in rows)
    assert rows[1]["target_s"] == 1.0 and rows[1]["met"] in (True, False)
    assert "| `search RUN jazz -k 100000` |" in markdown(result)
    with pytest.raises(ConfigError, match="exited 2, expected 0"):
        run_cli_bench([Case("search", "bad", ["search", "/no/such/run", "x"])], repeat=1,
                      echo=lambda _m: None)
