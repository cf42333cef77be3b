"""`dynplayer index` / `serve` / `bench serve` from the command line: a run indexed into the
embedded database, and user mistakes as one-line errors (exit 2), never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dynplayer.store.db import active_version, connect


def dynplayer(*args: str, env: dict[str, str] | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dynplayer.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.mark.db
def test_index_command_loads_a_run(new_database: Any, track_run_dir: Path) -> None:
    from dynplayer.run import run_version

    url = new_database("cli")
    done = dynplayer("index", str(track_run_dir), "--database-url", url, "--m", "8",
                     "--ef-construction", "32")
    assert done.returncode == 0, done.stderr
    version = run_version(track_run_dir)
    assert f"indexed model {version}: 400 tracks, 450 playlists" in done.stdout
    assert "no text model" in done.stdout  # the run has none: playlists without text vectors
    assert "(catalog track)" in done.stdout  # named after the run directory
    with connect(url, "track") as conn:
        assert active_version(conn) == version
        (defn,) = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname LIKE "
                               "'tracks_hnsw_%'").fetchone() or ("",)
        assert "m='8'" in defn and "ef_construction='32'" in defn


@pytest.mark.parametrize(("args", "message"), [
    (["serve", "/nonexistent/run", "--backend", "exact"], "run directory not found"),
    (["serve", "/nonexistent/run", "--backend", "nope"], "--backend must be pgvector or exact"),
    (["index", "RUN", "--m", "40", "--ef-construction", "64"], "ef_construction must be from"),
    (["bench", "serve", "/nonexistent/run", "--clients", "0"], "--clients must be from 1"),
    (["bench", "serve", "/nonexistent/run", "--split", "train"],
     "--split must be val or test, got 'train'"),
    (["serve", "RUN", "--workers", "0"], "--workers must be from 1 to 64, got 0"),
    (["bench", "serve", "RUN", "--against", "/no/such/python"],
     "--against: no such command '/no/such/python'"),
    (["bench", "serve", "RUN", "--ab-rounds", "1"], "--ab-rounds must be from 2 to 50, got 1"),
    (["bench", "serve", "RUN", "--ab-window", "0"], "--ab-window must be from 1 to 120"),
    (["bench", "serve", "RUN", "--store"], "add --no-reliability"),
    (["train-ranker", "RUN", "--protocol", "both"],
     "--protocol must be mixed, field or seed, got 'both'"),
    (["train-ranker", "RUN", "--recent-half-life", "-1"],
     "--recent-half-life must be >= 0, got -1.0"),
    (["train-ranker", "RUN", "--recent-half-life", "nan"],
     "--recent-half-life must be >= 0, got nan"),
])
def test_user_mistakes_are_one_line_errors(args: list[str], message: str,
                                           serve_run_dir: Path) -> None:
    done = dynplayer(*[str(serve_run_dir) if a == "RUN" else a for a in args])
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize(("name", "value", "message"), [
    ("DYNPLAYER_VERSION_POLL", "-1",
     "DYNPLAYER_VERSION_POLL='-1' (setting version_poll): Input should be greater"),
    ("DYNPLAYER_BACKEND", "sqlite",
     "DYNPLAYER_BACKEND='sqlite' (setting backend): Input should be 'pgvector' or 'exact'"),
    ("DYNPLAYER_POOL_TIMEOUT", "soon", "DYNPLAYER_POOL_TIMEOUT='soon'"),
])
def test_bad_setting_in_the_environment_is_a_one_line_error(
        name: str, value: str, message: str, serve_run_dir: Path) -> None:
    done = dynplayer("serve", str(serve_run_dir), env={name: value})
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_unreachable_database_url_is_a_one_line_error(serve_run_dir: Path) -> None:
    done = dynplayer("index", str(serve_run_dir), "--database-url",
                     "postgresql://nobody@127.0.0.1:1/none")
    assert done.returncode == 2 and "cannot connect to the database" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.db
def test_bench_cpu_meter_counts_each_process(pg_server: Any) -> None:
    """`bench serve`'s CPU split: the API process tree, PostgreSQL's, and the client (us)."""
    import time

    import psycopg

    from dynplayer.serve.load import CpuMeter

    # CPU readings come from /proc in 10 ms ticks per process (and a loaded machine adds its
    # own noise), so every bound below keeps several ticks of margin: 0.145 s was once read
    # for a 0.3 s burn against a bound of exactly 0.3 s.
    burn = "import sys, time\nsys.stdin.readline()\nt = time.process_time()\n" \
           "while time.process_time() - t < 0.6: pass\nprint('done', flush=True)\ntime.sleep(60)"
    api = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)
    try:
        with psycopg.connect(pg_server.url) as conn:  # open throughout, as the API's pool is
            # in this backend, not in parallel workers that exit (taking their CPU with them)
            conn.execute("SET max_parallel_workers_per_gather = 0")
            meter = CpuMeter(api.pid, pg_server.pid)
            meter.start()
            assert api.stdin is not None and api.stdout is not None
            api.stdin.write("go\n")
            api.stdin.flush()
            conn.execute("SELECT sum(x) FROM generate_series(1, 5000000) x").fetchone()
            assert api.stdout.readline().strip() == "done"
            t = time.process_time()
            while time.process_time() - t < 0.1:  # the client's own share
                pass
            ms = meter.per_request_ms(meter.read(), requests=2)
    finally:
        api.kill()
        api.wait()
    assert ms["api"] >= 200  # 0.6 s over 2 requests: 300 ms each, 100 ms of margin
    assert ms["postgres"] >= 20  # the 5M-row sum (~0.4 s) ran in a backend
    assert 25 <= ms["client"] < ms["api"]  # 0.1 s over 2: 50 ms each, 25 of margin
    assert ms["total"] == pytest.approx(ms["api"] + ms["postgres"] + ms["client"], abs=0.02)


@pytest.mark.db
def test_bench_text_cpu_floor(indexed_url: str, serve_catalog: Any,
                              text_searcher: Any) -> None:
    """`bench serve`'s compute floor: CPU per text request of this thread and of the pool's
    PostgreSQL backend, by step, with a total that adds up."""
    from dynplayer.serve.bench import text_cpu_floor
    from dynplayer.serve.recommender import PgvectorRecommender
    from dynplayer.store.db import open_pool

    pool = open_pool(indexed_url, min_size=1, max_size=1)
    try:
        rec = PgvectorRecommender(pool, serve_catalog.version, text_searcher,
                                  exact_playlists_max=0)  # HNSW itself
        texts = ["calm piano", "summer party", "rainy day jazz", "gym"] * 100  # CPU clock: 10 ms
        floor = text_cpu_floor(rec, texts, k=10, batch=8)
    finally:
        pool.close()
    steps = ["encode", "playlist_search", "aggregate_and_names", "postgres"]
    assert set(floor) == {*steps, "total"}
    assert all(floor[s] >= 0 for s in steps)
    # > 0 only: 400 searches cost the backend ~90 ms here, nine 10-ms ticks above the bound
    assert floor["playlist_search"] > 0 and floor["postgres"] > 0  # the HNSW search ran there
    assert abs(floor["total"] - sum(floor[s] for s in steps)) < 0.05, floor


def test_bench_queries_come_from_the_chosen_split(synthetic_corpus: Any) -> None:
    """HNSW settings are chosen on validation captions (`bench serve --split val`) and reported
    on test captions: the two query sets never share a playlist."""
    from dynplayer.data.corpus import TEST, VAL
    from dynplayer.serve.bench import split_queries

    c = synthetic_corpus
    known = set(c.track_ids)
    for split, code in (("val", VAL), ("test", TEST)):
        seeds, texts = split_queries(c, known, split, n_queries=40)
        rows = c.playlists_in(code)[:20]
        assert texts == [c.caption(int(p)) for p in c.playlists_in(code)[:40]]
        ptr = c.playlist_indptr
        assert seeds == [[c.track_ids[t] for t in c.occ_track[ptr[p]:ptr[p + 1]]][:50][
            : max(1, min(50, ptr[p + 1] - ptr[p]) // 2)] for p in rows]
    assert len(split_queries(c, known, "val", 1000)[1]) == len(c.playlists_in(VAL))
    assert len(split_queries(c, known, "test", 1000)[1]) == len(c.playlists_in(TEST))


def test_a_taken_port_is_one_line_suggesting_another(tmp_path: Path, serve_run_dir: Path) -> None:
    """`dynplayer serve/demo` on a port in use: one line naming the port and --port, before
    anything starts (it printed "Dynplayer: http://..." and then uvicorn's [Errno 98], exit 3;
    the demo only after its whole pipeline)."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"DYNPLAYER_DATA_DIR": str(tmp_path)}
        for args in (["serve", str(serve_run_dir), "--backend", "exact"],
                     ["demo", "--synthetic", "--workdir", str(tmp_path / "demo")]):
            done = dynplayer(*args, "--port", str(port), env=env, timeout=60)
            assert done.returncode == 2, done.stderr
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and f"port {port} on 127.0.0.1 is already in use" in lines[0]
            assert "--port" in lines[0] and "Traceback" not in done.stderr
            assert "Dynplayer: http" not in done.stdout and "[data]" not in done.stdout


@pytest.mark.db
def test_bench_serve_measures_playlist_and_track_search(indexed_url: str, serve_catalog: Any,
                                                        text_searcher: Any) -> None:
    """`bench serve`'s two added figures: HNSW vs the exact in-memory playlist search (time, and
    how many queries get other playlists), and the autocomplete on names as written, folded and
    with a typo."""
    from dynplayer.serve.bench import exact_vs_hnsw_playlists, track_search_ms
    from dynplayer.serve.recommender import ExactRecommender, PgvectorRecommender
    from dynplayer.store.db import open_pool

    pool = open_pool(indexed_url, min_size=1, max_size=1)
    try:
        hnsw = PgvectorRecommender(pool, serve_catalog.version, text_searcher,
                                   exact_playlists_max=0)
        got = exact_vs_hnsw_playlists(hnsw, ["calm piano", "summer party", "gym"])
    finally:
        pool.close()
    assert got["queries"] == 3 and 0 <= got["queries_with_other_playlists"] <= 3
    assert got["playlists"] == len(text_searcher.playlist_pids)
    assert got["hnsw_p50_ms"] > 0 and got["exact_p50_ms"] > 0
    names = [n for n in serve_catalog.names if n][:20]
    ts = track_search_ms(ExactRecommender(serve_catalog), names)
    assert ts["queries"] == 20
    assert ts["as_written"]["found_in_top10"] == 1.0 and ts["folded"]["found_in_top10"] == 1.0
    assert 0 <= ts["typo"]["found_in_top10"] <= 1.0


def test_alternated_load_measures_two_apis_in_the_same_minutes(serve_run_dir: Path,
                                                              tmp_path: Path) -> None:
    """`bench serve --against`: two real APIs (here the same code on the exact backend) loaded
    in alternated windows; every window's CPU per request, each side's median, the ratio."""
    import time

    from dynplayer.serve.load import alternated, api_args, free_port

    env = {**os.environ, "DYNPLAYER_RUN_DIR": str(serve_run_dir), "DYNPLAYER_BACKEND": "exact",
           "DYNPLAYER_DATA_DIR": str(tmp_path / "data")}
    ports = [free_port(), free_port()]
    procs = [subprocess.Popen([sys.executable, *api_args(p, 1)], env=env) for p in ports]
    try:
        from dynplayer.serve.bench import _wait_ready

        for port, proc in zip(ports, procs, strict=True):
            _wait_ready(port, proc, timeout=120)
        lines: list[str] = []
        t0 = time.perf_counter()
        out = alternated({"this": (ports[0], procs[0].pid), "against": (ports[1], procs[1].pid)},
                         ["rainy day jazz", "calm piano"], 2, 10, rounds=2, window=1.0,
                         echo=lines.append)
        assert time.perf_counter() - t0 >= 4 * 1.0  # four windows of a second
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=60)
    assert out["errors"] == {"this": 0, "against": 0}
    assert [len(out["api_cpu_ms"][n]) for n in ("this", "against")] == [2, 2]
    assert all(r > 0 for n in ("this", "against") for r in out["requests"][n])
    # CPU is read in 10 ms ticks: a starved window may read none, both of a side hardly
    assert all(v >= 0 for n in ("this", "against") for v in out["api_cpu_ms"][n])
    assert all(max(out["api_cpu_ms"][n]) > 0 for n in ("this", "against"))
    m = out["median_api_cpu_ms"]
    assert out["ratio"] == pytest.approx(m["this"] / m["against"], abs=2e-3)
    assert len(lines) == 1 and lines[0].startswith("k=10, API CPU per request, alternated:")



@pytest.mark.db
def test_bench_serve_store_reads_what_index_filled(new_database: Any,
                                                   track_run_dir: Path) -> None:
    """`bench serve --store` measures the store `dynplayer index` filled: its counts and HNSW
    settings when the run is its active model, a one-line error naming the fix otherwise."""
    from dynplayer.errors import ConfigError
    from dynplayer.run import run_version
    from dynplayer.store.indexing import index_searcher_run, stored_model

    url = new_database("bstore")
    with pytest.raises(ConfigError, match="holds no model"):
        stored_model(url, None, run_version(track_run_dir), track_run_dir)
    index_searcher_run(url, track_run_dir, None, m=8, ef_construction=32, track_m=8)
    got = stored_model(url, None, run_version(track_run_dir), track_run_dir)
    assert got["tracks"] == 400 and got["playlists"] == 450
    assert got["hnsw"]["m"] == 8 and got["hnsw"]["ef_construction"] == 32
    with pytest.raises(ConfigError, match=r"not .*'s model other; run `dynplayer index"):
        stored_model(url, None, "other", track_run_dir)


def test_one_client_posts_continuations(serve_run_dir: Path, tmp_path: Path) -> None:
    """The served continuation's latency at one client (`bench serve`): a real API, seed lists
    posted in turn, every answer a 200."""
    from dynplayer.serve.bench import _wait_ready
    from dynplayer.serve.load import api_args, continue_body, free_port, one_client

    ids = (serve_run_dir / "ids.txt").read_text().split()
    env = {**os.environ, "DYNPLAYER_RUN_DIR": str(serve_run_dir), "DYNPLAYER_BACKEND": "exact",
           "DYNPLAYER_DATA_DIR": str(tmp_path / "data")}
    port = free_port()
    proc = subprocess.Popen([sys.executable, *api_args(port, 1)], env=env)
    try:
        _wait_ready(port, proc, timeout=120)
        out = one_client(port, [ids[:3], ids[10:15]], 10, 1.0, "/v1/recommend/continue",
                         continue_body)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert out["route"] == "/v1/recommend/continue" and out["k"] == 10
    assert out["requests"] > 0 and out["errors"] == 0 and out["statuses"].keys() == {"200"}
    assert out["p50_ms"] <= out["p99_ms"]


@pytest.mark.db
def test_bench_serve_store_end_to_end(new_database: Any, serve_run_dir: Path,
                                      monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`bench serve --store` on a store `dynplayer index RUN_DIR` filled (the catalog named
    after the run, as `index` names it): nothing indexed again, the overlap and the served
    continuation measured, the store left as it was."""
    from dynplayer.serve.bench import run_bench
    from dynplayer.store.db import active_version, connect
    from dynplayer.store.names import catalog_name_for

    url = new_database("bstore2e")
    done = dynplayer("index", str(serve_run_dir), "--database-url", url)
    assert done.returncode == 0, done.stderr
    name = catalog_name_for(serve_run_dir)
    monkeypatch.setenv("DYNPLAYER_DATABASE_URL", url)
    monkeypatch.setenv("DYNPLAYER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DYNPLAYER_CATALOG", raising=False)
    with connect(url, name) as conn:
        before = active_version(conn)
    lines: list[str] = []
    out = run_bench(serve_run_dir, clients=1, duration=2, n_queries=10, reliability=False,
                    workdir=tmp_path / "w", echo=lines.append, ks=(5,), store=True)
    assert out["index"]["store"] == "as indexed" and out["index"]["tracks"] == 400
    assert out["index"]["catalog"] == name
    assert out["recall"]["continue"]["n"] > 0 and out["recall"]["similar"]["n"] == 10
    served = out["continue_one_client"]
    assert served["route"] == "/v1/recommend/continue" and served["requests"] > 0
    assert served["errors"] == 0
    similar = out["similar_one_client"]  # GET /v1/tracks/ID/similar, the overlap's tracks
    assert similar["requests"] > 0 and similar["errors"] == 0
    assert similar["statuses"].keys() == {"200"}
    assert out["shared_buffers"].endswith("MB") or out["shared_buffers"].endswith("GB")
    assert "skipped" not in out["prewarm"] and out["prewarm"]["index_mb"] > 0
    assert any(line.startswith("measuring the store as indexed") for line in lines)
    with connect(url, name) as conn:
        assert active_version(conn) == before
