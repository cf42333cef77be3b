"""`dynplayer demo --no-serve` runs every stage to completion on a synthetic corpus and leaves
the run indexed in its own embedded database."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from dynplayer.data.corpus import Corpus, save_corpus
from dynplayer.run import run_version
from dynplayer.serve.recommender import ExactRecommender, PgvectorRecommender, TrackResult
from dynplayer.store.catalog import build_catalog, load_searcher
from dynplayer.store.db import active_version, connect, open_pool
from dynplayer.store.embedded import EmbeddedServer

pytestmark = [pytest.mark.slow, pytest.mark.db]


def searcher_tracks(searcher: object, query: str,
                    like: list[TrackResult]) -> list[TrackResult]:
    """The searcher's own end-to-end answer, in the recommenders' result type."""
    result = searcher.search(query, k=len(like))  # type: ignore[attr-defined]
    names = {t.track_id: (t.name, t.artist) for t in like}
    return [TrackResult(h.track_id, h.score, *names.get(h.track_id, (None, None)),
                        because=list(h.because)) for h in result.tracks]


def test_demo_runs_every_stage_and_indexes(synthetic_corpus: Corpus) -> None:
    # Not under pytest's basetemp (mode 0700): the server runs as an unprivileged user as root.
    work = Path(tempfile.mkdtemp(prefix="dynplayer-test-demo-"))
    # The small planted corpus stands in for the data stage (the demo reuses a corpus it finds),
    # so training, evaluation and the text model stay quick.
    save_corpus(synthetic_corpus, work / "corpus")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "dynplayer.cli", "demo", "--synthetic", "--no-serve",
             "--workdir", str(work)], capture_output=True, text=True, timeout=1500,
            env={**os.environ, "DYNPLAYER_DATA_DIR": str(work / "data")})
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        out = done.stdout
        run_dir = work / "run"
        assert "[data] reusing" in out
        for stage in ("$ dynplayer train", "[index] model", "[serve] skipped (--no-serve)"):
            assert stage in out, out
        assert (run_dir / "vectors.npy").exists() and (run_dir / "config.json").exists()
        # Every stage ran and succeeded: the demo only notes a failed evaluation or text model
        # and goes on, so its exit status alone does not say so.
        assert "$ dynplayer evaluate" in out and "evaluation failed" not in out, out
        metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
        assert {"dynplayer", "ease"} <= set(metrics["methods"]), metrics["methods"].keys()
        # the second stage ran before the evaluation, which shows its row when it was kept
        assert "$ dynplayer train-ranker" in out and "second stage failed" not in out, out
        assert out.index("$ dynplayer train-ranker") < out.index("$ dynplayer evaluate")
        kept = (run_dir / "ranker").is_dir()
        assert kept != (run_dir / "ranker-rejected").is_dir()
        assert ("dynplayer two-stage" in metrics["methods"]) == kept, metrics["methods"].keys()
        assert (run_dir / "eval" / "report.html").exists()
        assert "text-model training failed" not in out, out
        has_text = (run_dir / "text").is_dir()
        assert has_text == ("$ dynplayer train-text" in out)
        server = EmbeddedServer(work / "postgres")
        server.start()
        try:
            with connect(server.url, "synthetic") as conn:  # the demo's own catalog
                assert active_version(conn) == run_version(run_dir)
                n = conn.execute("SELECT count(*) FROM tracks").fetchone()
                assert n is not None and n[0] == len((run_dir / "ids.txt").read_text().split())
                texts = conn.execute("SELECT count(text_vector) FROM playlists").fetchone()
                assert texts is not None and (texts[0] > 0) == has_text
            if has_text:  # the real text model (issue 5) behind both recommenders
                searcher = load_searcher(run_dir)
                assert searcher is not None
                pool = open_pool(server.url, min_size=1, max_size=2, catalog="synthetic")
                try:
                    hnsw = PgvectorRecommender(pool, run_version(run_dir), searcher,
                                               exact_playlists_max=0)
                    exact = ExactRecommender(build_catalog(run_dir, searcher), searcher)
                    for query in ("smooth jazz", "신나는 k-pop"):
                        a, b = exact.text(query, 10), hnsw.text(query, 10)
                        assert [t.track_id for t in a] == [t.track_id for t in b], query
                        assert a and all(t.because and t.name for t in a)
                        own = searcher_tracks(searcher, query, a)
                        assert [t.track_id for t in own] == [t.track_id for t in a]
                        assert [t.score for t in own] == pytest.approx([t.score for t in a],
                                                                       rel=1e-4)
                finally:
                    pool.close()
        finally:
            server.stop()
        # a second run reuses every stage's output
        again = subprocess.run(
            [sys.executable, "-m", "dynplayer.cli", "demo", "--synthetic", "--no-serve",
             "--workdir", str(work)], capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "[data] reusing" in again.stdout and "[train] reusing" in again.stdout
        assert "[evaluate] reusing" in again.stdout and "[text] reusing" in again.stdout
        assert "[ranker] reusing" in again.stdout
        assert "$ dynplayer" not in again.stdout, again.stdout  # no stage ran again
    finally:
        shutil.rmtree(work, ignore_errors=True)
