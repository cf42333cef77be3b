"""`dynplayer bench text`: the text-search tables of docs/benchmarks.md (work in progress)."""

from __future__ import annotations

from pathlib import Path


def run_bench(run_dir: Path, split: str = "test", latency_queries: int = 500) -> str:
    raise NotImplementedError("bench text is being written")
