"""`dynplayer bench serve`: indexing time, HNSW recall against exact search, API latency under
concurrent load over loopback, and reliability (database restart, reindex) under load.

Everything runs on this machine: a fresh embedded PostgreSQL in a scratch directory, the API in a
uvicorn subprocess on 127.0.0.1, and client threads with keep-alive connections.
"""

from __future__ import annotations

import gc
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dynplayer.errors import ConfigError, DynplayerError
from dynplayer.serve.load import (
    CpuMeter,
    alternated,
    api_args,
    continue_body,
    free_port,
    load_at,
    one_client,
    reindex_under_load,
    request,
    restart_under_load,
)

Echo = Callable[[str], None]
TOKEN = "bench-admin-token"


def _overlap(a: list[str], b: list[str]) -> float:
    return len(set(a) & set(b)) / max(len(a), 1)


def recall_against_exact(exact: Any, hnsw: Any, track_ids: list[str], seeds: list[list[str]],
                         texts: list[str], k: int = 50) -> dict[str, Any]:
    """Mean (and min) overlap of HNSW top-k lists with the exact top-k lists."""
    def stats(values: list[float]) -> dict[str, float]:
        return {"mean": round(float(np.mean(values)), 4), "min": round(float(np.min(values)), 4),
                "n": len(values)}

    out: dict[str, Any] = {"k": k}
    # the ranking itself, without an artist cap (max_per_artist 0)
    similar = [_overlap([t.track_id for t in exact.similar(x, k, 0)],
                        [t.track_id for t in hnsw.similar(x, k, 0)]) for x in track_ids]
    out["similar"] = stats(similar)
    out["similar"]["worst_track_id"] = track_ids[int(np.argmin(similar))]
    out["continue"] = stats([
        _overlap([t.track_id for t in exact.continue_playlist(s, k, max_per_artist=0).tracks],
                 [t.track_id for t in hnsw.continue_playlist(s, k, max_per_artist=0).tracks])
        for s in seeds])
    if texts and exact.has_text:
        out["text"] = stats([_overlap([t.track_id for t in exact.text(q, k, 0)],
                                      [t.track_id for t in hnsw.text(q, k, 0)]) for q in texts])
        vecs = [exact.searcher.encode_query(q) for q in texts]
        out["text_playlists"] = stats(
            [_overlap([str(r) for r in exact._top_playlists(v, exact.text_playlists)[0]],
                      [str(r) for r in hnsw._top_playlists(v, hnsw.text_playlists)[0]])
             for v in vecs])
    return out


def text_breakdown(rec: Any, texts: list[str], k: int) -> dict[str, dict[str, float]]:
    """Median and p99 milliseconds of each step of the pgvector text path, in process."""
    steps: dict[str, list[float]] = {"encode": [], "playlist_search": [], "aggregate": [],
                                     "track_lookup": [], "total": []}
    searcher = rec.searcher
    searcher.encode_query(texts[0])
    for text in texts:
        t0 = time.perf_counter()
        q = np.asarray(searcher.encode_query(text), dtype=np.float32)
        t1 = time.perf_counter()
        rows, sims = rec._top_playlists(q, rec.text_playlists)
        t2 = time.perf_counter()
        hits = searcher.aggregate(rows, sims, k, query=text).tracks
        t3 = time.perf_counter()
        rec._track_info([h.track_id for h in hits])
        t4 = time.perf_counter()
        for name, dt in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0), strict=True):
            steps[name].append(dt * 1000)
    return {name: {"p50": round(float(np.median(v)), 2),
                   "p99": round(float(np.percentile(v, 99)), 2)} for name, v in steps.items()}


def exact_vs_hnsw_playlists(hnsw: Any, texts: list[str]) -> dict[str, float]:
    """Per text query: milliseconds (wall) of the HNSW playlist search and of the exact one in
    memory that small catalogs use (`EXACT_PLAYLISTS_MAX`), and the share of queries whose
    top playlists differ between them (each such query scores its tracks differently)."""
    from dynplayer.serve.ranking import top_playlists_exact

    searcher, n = hnsw.searcher, hnsw.text_playlists
    vectors = np.asarray(searcher.playlist_vectors, dtype=np.float32)
    t_hnsw, t_exact, differ = [], [], 0
    for text in texts:
        q = np.asarray(searcher.encode_query(text), dtype=np.float32)
        t0 = time.perf_counter()
        rows_h, _ = hnsw._top_playlists(q, n)
        t1 = time.perf_counter()
        rows_e, _ = top_playlists_exact(vectors, q, n)
        t2 = time.perf_counter()
        t_hnsw.append(t1 - t0)
        t_exact.append(t2 - t1)
        differ += set(rows_h.tolist()) != set(rows_e.tolist())
    return {"playlists": int(vectors.shape[0]), "dim": int(vectors.shape[1]),
            "hnsw_p50_ms": round(float(np.median(t_hnsw)) * 1000, 3),
            "exact_p50_ms": round(float(np.median(t_exact)) * 1000, 3),
            "queries": len(texts), "queries_with_other_playlists": differ}


def track_search_ms(rec: Any, names: list[str]) -> dict[str, Any]:
    """`search_tracks` (the autocomplete) on real names three ways: as written, folded
    (lower case, accents dropped), and with two letters swapped (a typo): p50 milliseconds and
    how often the named track is among the first 10."""
    from unidecode import unidecode

    def typo(s: str) -> str:
        i = len(s) // 2
        return s[:i - 1] + s[i] + s[i - 1] + s[i + 1:] if len(s) > 4 else s

    out: dict[str, Any] = {"queries": len(names)}
    for kind, make in (("as_written", str), ("folded", lambda s: unidecode(s).lower()),
                       ("typo", typo)):
        times, found = [], 0
        for name in names:
            t0 = time.perf_counter()
            hits = rec.search_tracks(make(name), limit=10)
            times.append(time.perf_counter() - t0)
            found += any(h.name == name for h in hits)
        out[kind] = {"p50_ms": round(float(np.median(times)) * 1000, 2),
                     "found_in_top10": round(found / max(len(names), 1), 3)}
    return out


def text_cpu_floor(rec: Any, texts: list[str], k: int, batch: int) -> dict[str, float]:
    """CPU milliseconds per text request of the computation alone: no HTTP, no framework, no
    request threads. Queries are encoded `batch` at a time (as the service batches concurrent
    ones), then each runs the HNSW playlist search, `aggregate` and the name lookup. Counted:
    this thread, and the PostgreSQL backends of the recommender's pool."""
    import psutil
    from threadpoolctl import threadpool_limits

    searcher = rec.searcher
    encode_many = getattr(searcher, "encode_queries", None) or \
        (lambda batch: [searcher.encode_query(t) for t in batch])
    with rec.pool.connection() as conn:
        pids = [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND "
            "datname = current_database() AND usename = current_user").fetchall()]
    backends = [psutil.Process(pid) for pid in pids]

    def pg_cpu() -> float:
        return sum(sum(p.cpu_times()[:2]) for p in backends)

    parts = {"encode": 0.0, "playlist_search": 0.0, "aggregate_and_names": 0.0}
    with threadpool_limits(limits=1, user_api="blas"):
        for text in texts[:batch]:  # warm up
            rows, sims = rec._top_playlists(searcher.encode_query(text), rec.text_playlists)
            searcher.aggregate(rows, sims, k)
        pg0, n = pg_cpu(), 0
        for i in range(0, len(texts), batch):
            t = time.thread_time()
            vectors = encode_many(texts[i:i + batch])
            parts["encode"] += time.thread_time() - t
            for text, q in zip(texts[i:i + batch], vectors, strict=True):
                t = time.thread_time()
                rows, sims = rec._top_playlists(np.asarray(q, dtype=np.float32),
                                                rec.text_playlists)
                t2 = time.thread_time()
                hits = searcher.aggregate(rows, sims, k, query=text).tracks
                rec._track_info([h.track_id for h in hits])
                parts["aggregate_and_names"] += time.thread_time() - t2
                parts["playlist_search"] += t2 - t
                n += 1
        pg = pg_cpu() - pg0
    out = {name: round(v * 1000 / n, 2) for name, v in parts.items()}
    out["postgres"] = round(pg * 1000 / n, 2)
    out["total"] = round(sum(out.values()), 2)
    return out


def split_queries(corpus: Any, known: set[str], split: str,
                  n_queries: int) -> tuple[list[list[str]], list[str]]:
    """The playlists of `split` ("val" or "test") as queries: continuation seeds (the first
    half of up to 50 known tracks, n_queries // 2 playlists) and captions (n_queries)."""
    from dynplayer.data.corpus import TEST, VAL

    indptr = corpus.playlist_indptr
    seeds: list[list[str]] = []
    texts: list[str] = []
    for p in corpus.playlists_in(VAL if split == "val" else TEST):
        occ = corpus.occ_track[indptr[p]:indptr[p + 1]]
        ids = [corpus.track_ids[t] for t in occ if corpus.track_ids[t] in known][:50]
        if ids and len(seeds) < n_queries // 2:
            seeds.append(ids[: max(1, len(ids) // 2)])
        caption = corpus.caption(int(p))
        if caption and len(texts) < n_queries:
            texts.append(caption[:500])
    return seeds, texts


def run_bench(run_dir: Path, *, clients: int = 8, duration: float = 60.0, n_queries: int = 500,
              reliability: bool = True, workdir: Path | None = None, out: Path | None = None,
              echo: Echo = print, ks: tuple[int, ...] = (20, 50), workers: int = 1,
              split: str = "test", against: list[str] | None = None,
              ab_rounds: int = 6, ab_window: float = 8.0, store: bool = False,
              track_search: bool = True) -> dict[str, Any]:
    """Measure everything; print a summary; return (and optionally write) the results.

    `split` names the corpus split whose playlists give the continuation seeds and the text
    queries (captions): HNSW settings are chosen on "val", and "test" reports them once. The
    text path's CPU and the load are measured at each k of `ks` (the page asks for 20 tracks,
    a playlist generator 50); reliability at the first. `against`: the command (a Python
    interpreter, e.g. `env PYTHONPATH=old/src python`) of another installation whose API is
    loaded in alternated windows with this one's (`load.alternated`), at each k.

    `store`: measure the store `dynplayer index RUN_DIR` filled (the configured URL, or the
    data directory's embedded server) instead of indexing into a scratch database: a large
    catalogue is not indexed twice. The run must be its active model; no reliability checks
    (they reindex and restart the database).
    """
    k = ks[0]
    if split not in ("val", "test"):
        raise ConfigError(f"--split must be val or test, got {split!r}")
    if not 1 <= clients <= 64:
        raise ConfigError(f"--clients must be from 1 to 64, got {clients}")
    if not 1 <= duration <= 300:
        raise ConfigError(f"--duration must be from 1 to 300 seconds, got {duration}")
    from dynplayer.data.corpus import load_corpus
    from dynplayer.rank.serving import continuation_cpu_ms, load_serving_ranker
    from dynplayer.run import load_run
    from dynplayer.serve.recommender import (
        ExactRecommender,
        PgvectorRecommender,
        text_playlists_of,
    )
    from dynplayer.settings import Settings
    from dynplayer.store.catalog import build_catalog, load_searcher
    from dynplayer.store.db import connect, index_catalog, open_pool
    from dynplayer.store.embedded import EmbeddedServer
    from dynplayer.store.indexing import embedded_url, stored_model
    from dynplayer.store.names import catalog_name_for

    if not 1 <= workers <= 8:
        raise ConfigError(f"--workers must be from 1 to 8, got {workers}")
    if store and reliability:
        raise ConfigError("--store measures the store `dynplayer index` filled; the "
                          "reliability checks reindex and restart a database of their own: "
                          "add --no-reliability")
    results: dict[str, Any] = {"run_dir": str(run_dir), "split": split, "clients": clients,
                               "workers": workers, "duration_s": duration,
                               "cpus": os.cpu_count()}
    scratch = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="dynplayer-bench-"))
    server: Any = None if store else EmbeddedServer(scratch / "pgdata", delete_on_stop=True)
    proc: subprocess.Popen[bytes] | None = None
    try:
        t0 = time.perf_counter()
        searcher = load_searcher(run_dir)
        catalog = build_catalog(run_dir, searcher)
        results["read_run_s"] = round(time.perf_counter() - t0, 2)
        # HNSW parameters from the settings (DYNPLAYER_HNSW_M, ..._EF_SEARCH_MIN, ...), which the
        # API subprocess reads from the same environment.
        s = Settings()
        results["hnsw"] = {"m": s.hnsw_m, "track_m": s.hnsw_track_m,
                           "ef_construction": s.hnsw_ef_construction,
                           "ef_search_min": s.ef_search_min,
                           "ef_search_factor": s.ef_search_factor}
        results["api_blas_threads"] = s.blas_threads  # DYNPLAYER_BLAS_THREADS, 0 = numpy's
        name: str | None = None  # the scratch database's catalog: the unnamed one
        if store:
            url, server = embedded_url(s)
            # the catalog `dynplayer index RUN_DIR` filled: DYNPLAYER_CATALOG, else the run's
            name = s.catalog or catalog_name_for(run_dir)
            results["index"] = {**stored_model(url, name, catalog.version, run_dir),
                                "catalog": name}
            echo(f"measuring the store as indexed: {results['index']}")
        else:
            url = server.start()
            report = index_catalog(url, catalog, m=s.hnsw_m,
                                   ef_construction=s.hnsw_ef_construction, progress=echo,
                                   track_m=s.hnsw_track_m)
            results["index"] = {"tracks": report.tracks, "playlists": report.playlists,
                                "seconds": report.seconds}
            echo(f"indexed {report.tracks:,} tracks, {report.playlists:,} playlists in "
                 f"{report.seconds['total']:.2f}s (+ {results['read_run_s']}s reading the run)")

        run = load_run(run_dir)
        corpus = load_corpus(run.corpus_dir)
        rng = np.random.default_rng(0)
        sample = [catalog.track_ids[i] for i in
                  rng.choice(len(catalog.track_ids), min(n_queries, len(catalog.track_ids)),
                             replace=False)]
        seeds, texts = split_queries(corpus, set(catalog.track_ids), split, n_queries)
        n_playlists = text_playlists_of(searcher)  # as the service aggregates
        results["text_playlists"] = n_playlists
        exact = ExactRecommender(catalog, searcher, text_playlists=n_playlists)
        pool = open_pool(url, min_size=1, max_size=2, catalog=name)
        pool.wait()
        hnsw = PgvectorRecommender(pool, catalog.version, searcher, text_playlists=n_playlists,
                                   ef_search_min=s.ef_search_min,
                                   ef_search_factor=s.ef_search_factor,
                                   exact_playlists_max=0)  # measures HNSW itself
        with pool.connection() as conn:  # what the HNSW searches ran with
            row = conn.execute("SHOW shared_buffers").fetchone()
            results["shared_buffers"] = row[0] if row else None
        if store:  # as the service does when it loads the model (a cold 1M graph read page
            # by page from disk ran past the 2 s statement timeout)
            from dynplayer.store.buffers import prewarm_indexes

            with connect(url, name) as conn:
                results["prewarm"] = prewarm_indexes(conn)
            echo(f"HNSW indexes into the buffers: {results['prewarm']}")
        results["recall"] = recall_against_exact(exact, hnsw, sample, seeds,
                                                 texts[: n_queries // 2])
        if searcher is not None and texts:
            results["text_breakdown_ms"] = text_breakdown(hnsw, texts[:200], k)
            echo(f"text path, one query at a time: {json.dumps(results['text_breakdown_ms'])}")
            # The floor under the load test: what the computation alone costs, against the CPU
            # budget the latency target leaves (closed loop: p50 ~ clients / throughput).
            budget = (os.cpu_count() or 1) * 15.0 / clients
            results["text_cpu_floor_ms"] = {"budget_for_p50_15ms": round(budget, 2)}
            for kk in ks:
                floor = text_cpu_floor(hnsw, [t for t in texts if t.strip()], kk, batch=clients)
                results["text_cpu_floor_ms"][str(kk)] = floor
                echo(f"k={kk}, text path CPU floor per request (in process, encoded {clients} "
                     f"at a time, no HTTP): {json.dumps(floor)}; a p50 of 15 ms with {clients} "
                     f"clients on {os.cpu_count()} cores leaves {budget:.2f} ms per request for "
                     "everything")
            results["exact_vs_hnsw_playlists"] = exact_vs_hnsw_playlists(hnsw, texts[:200])
            echo(f"playlist search, HNSW vs exact in memory (used up to "
                 f"{s.exact_playlists_max:,} playlists): "
                 f"{json.dumps(results['exact_vs_hnsw_playlists'])}")
        reranker = load_serving_ranker(run_dir)
        if reranker is not None and seeds:
            results["ranker_cpu_ms"] = continuation_cpu_ms(exact, reranker, seeds, k)
            echo(f"continuation CPU per request, in process: "
                 f"{json.dumps(results['ranker_cpu_ms'])}")
        named = [n for n in catalog.names if n and len(n) > 4][:200] if track_search else []
        if named:
            results["track_search"] = track_search_ms(exact, named)
            echo(f"track search (autocomplete): {json.dumps(results['track_search'])}")
        pool.close()
        echo(f"HNSW vs exact top-50 overlap ({split} split): "
             f"{json.dumps(results['recall'])}")

        if searcher is None:
            echo("note: the run has no text model; the text load test is skipped")
            return results
        # The API subprocess loads the run itself: at 1M playlists (`index` peaks at 12 GB)
        # two copies beside the database would be tight in 24 GB, so this one lets go of its.
        del searcher, catalog, exact, hnsw, corpus, run, reranker
        gc.collect()
        port = free_port()
        # No thread settings in the environment: the API limits its BLAS threads itself, as
        # under `dynplayer serve` (with OMP_NUM_THREADS=1 here, this bench once hid the
        # spinning BLAS threads that doubled the CPU per request at k=50).
        env = {**{k: v for k, v in os.environ.items()
                  if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
               **({"DYNPLAYER_CATALOG": name} if name else {}),
               "DYNPLAYER_DATABASE_URL": url, "DYNPLAYER_RUN_DIR": str(run_dir),
               "DYNPLAYER_AUTO_INDEX": "false", "DYNPLAYER_ADMIN_TOKEN": TOKEN}
        proc = subprocess.Popen([sys.executable, *api_args(port, workers)], env=env)
        _wait_ready(port, proc)
        if seeds:  # the served continuation, one client (the seeds of the overlap sample)
            results["continue_one_client"] = one_client(
                port, seeds, k, min(20.0, max(duration / 3, 2.0)), "/v1/recommend/continue",
                continue_body)
            echo(f"k={k}, POST /v1/recommend/continue, 1 client: "
                 f"{json.dumps(results['continue_one_client'])}")
        if sample:  # similar tracks, one client (the overlap's sample of tracks)
            results["similar_one_client"] = one_client(
                port, sample, k, min(20.0, max(duration / 3, 2.0)),
                "/v1/tracks/{q}/similar?k={k}", None)
            echo(f"k={k}, GET /v1/tracks/ID/similar, 1 client: "
                 f"{json.dumps(results['similar_one_client'])}")
        queries = texts or ["rainy day jazz"]
        cpu = CpuMeter(proc.pid, None if server is None else server.pid)
        results["load"] = {str(kk): load_at(port, queries, clients, kk, duration, cpu, echo)
                           for kk in ks}
        if against:
            other_port = free_port()
            other = subprocess.Popen([*against, *api_args(other_port, workers)], env=env)
            try:
                _wait_ready(other_port, other)
                sides = {"this": (port, proc.pid), "against": (other_port, other.pid)}
                results["against"] = {"command": against, **{
                    str(kk): alternated(sides, queries, clients, kk, ab_rounds, ab_window, echo)
                    for kk in ks}}
            finally:
                other.terminate()
                other.wait(timeout=60)
        if reliability:
            results["reindex_under_load"] = reindex_under_load(port, queries, clients, k, TOKEN)
            echo(f"reindex under load: {json.dumps(results['reindex_under_load'])}")
            results["db_restart_under_load"] = restart_under_load(server, port, queries,
                                                                   clients, k)
            echo(f"database restart under load: {json.dumps(results['db_restart_under_load'])}")
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if server is not None:
            server.stop()
        if workdir is None:
            shutil.rmtree(scratch, ignore_errors=True)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(results, indent=2) + "\n")
    return results


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DynplayerError(f"the API process exited with status {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            status, _ = request(conn, "GET", "/readyz")
            conn.close()
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise DynplayerError("the API did not become ready")
