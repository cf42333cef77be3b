"""Several API processes on one database: each follows the model version the database holds.

Two services (as two worker processes would be) share one database. When one of them indexes
the retrained run, the other reloads itself; when one of them indexes another run, the other
stops answering (503 with the reason, not ready) instead of mixing its in-memory model with the
other model's tables, and answers again once its model is back. Also `dynplayer serve
--workers 2` end to end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from dynplayer.run import run_version
from dynplayer.serve.app import create_app
from dynplayer.settings import Settings
from dynplayer.store.db import active_version, connect
from dynplayer.store.names import catalog_name_for

pytestmark = pytest.mark.db


def _settings(url: str, run_dir: Path, **extra: Any) -> Settings:
    return Settings(database_url=url, run_dir=run_dir, backend="pgvector", admin_token="tok",
                    **extra)


def _wait(predicate: Any, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _similar(client: TestClient, track_id: str) -> httpx.Response:
    return client.get(f"/v1/tracks/{track_id}/similar", params={"k": 5})


@pytest.fixture
def two_runs(tmp_path: Path, synthetic_corpus_dir: Path, make_svd_run_factory: Any
             ) -> Iterator[tuple[Path, Path]]:
    """Two different runs made in milliseconds (SVD stand-ins, not the trained model): these
    tests are about which model version a process serves, not about the model."""
    a = make_svd_run_factory(synthetic_corpus_dir, tmp_path / "a", dim=16)
    b = make_svd_run_factory(synthetic_corpus_dir, tmp_path / "b", dim=12)
    yield a, b
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_a_process_follows_the_model_another_process_indexed(
        new_database: Any, two_runs: tuple[Path, Path], synthetic_corpus_dir: Path,
        make_svd_run_factory: Any, tmp_path: Path) -> None:
    url = new_database("follow")
    run_a, run_b = two_runs
    version_a, version_b = run_version(run_a), run_version(run_b)
    first = create_app(_settings(url, run_a, version_poll=0.1))
    other = create_app(_settings(url, run_a, version_poll=0))  # the one an admin talks to
    auth = {"Authorization": "Bearer tok"}
    with TestClient(first) as c1, TestClient(other) as c2:
        ids = (run_a / "ids.txt").read_text().split()
        assert _similar(c1, ids[0]).status_code == 200
        assert c1.get("/readyz").json()["model_version"] == version_a

        # 1. Another run is indexed through the other process: this one stops answering.
        other.state.service.settings = _settings(url, run_b, version_poll=0)
        assert c2.post("/v1/admin/reload", headers=auth).json()["model_version"] == version_b
        with connect(url) as conn:
            assert active_version(conn) == version_b
        _wait(lambda: c1.get("/readyz").status_code == 503)
        ready = c1.get("/readyz").json()
        assert ready["ready"] is False and ready["model_version"] == version_a
        assert version_b in ready["detail"] and str(run_a) in ready["detail"]
        r = _similar(c1, ids[0])
        assert r.status_code == 503 and "another run" in r.json()["message"]

        # 2. Its own model is indexed again: it answers again, by itself.
        other.state.service.settings = _settings(url, run_a, version_poll=0)
        assert c2.post("/v1/admin/reload", headers=auth).json()["model_version"] == version_a
        _wait(lambda: c1.get("/readyz").status_code == 200)
        assert _similar(c1, ids[0]).status_code == 200

        # 3. Its run directory is retrained in place and the other process indexes it: this
        #    one reloads the new model from disk (without indexing it a second time).
        make_svd_run_factory(synthetic_corpus_dir, run_a, dim=8)
        version_a2 = run_version(run_a)
        assert version_a2 not in (version_a, version_b)
        assert c2.post("/v1/admin/reload", headers=auth).json()["model_version"] == version_a2
        _wait(lambda: c1.get("/readyz").json()["model_version"] == version_a2)
        assert c1.get("/readyz").status_code == 200
        assert _similar(c1, ids[0]).status_code == 200
        with connect(url) as conn:  # indexed once: by the process that was asked to
            (n,) = conn.execute("SELECT count(*) FROM model_versions").fetchone() or (0,)
            assert n == 3


def test_following_never_indexes(new_database: Any, two_runs: tuple[Path, Path],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`follow_database` reloads only what the database already holds: a stale process never
    swaps its own model back in (two processes would otherwise take turns reindexing). While
    stale it hashes its run again only when the run's files change, and it recovers once they
    hold the database's model."""
    import dynplayer.run as db

    url = new_database("follow_noindex")
    run_a, run_b = two_runs
    first = create_app(_settings(url, run_a, version_poll=0))
    with TestClient(first) as c1:
        service = first.state.service
        from dynplayer.store.indexing import index_run

        index_run(run_b, _settings(url, run_b), echo=lambda _m: None)
        hashed: list[Path] = []
        real = db.run_version
        monkeypatch.setattr(db, "run_version", lambda d: hashed.append(d) or real(d))
        assert service.follow_database() == "stale"
        assert service.follow_database() == "stale"  # and stays so, without indexing
        assert len(hashed) == 1  # nothing changed: not hashed again
        with connect(url) as conn:
            assert active_version(conn) == run_version(run_b)
        assert c1.get("/readyz").status_code == 503

        # Its run directory is given the database's model: it reloads it (no indexing).
        for f in run_b.iterdir():
            if f.is_file():
                shutil.copy2(f, run_a / f.name)
        assert service.follow_database() == "reloaded" and len(hashed) > 1  # hashed again
        assert c1.get("/readyz").json()["model_version"] == run_version(run_b)
        assert c1.get("/readyz").status_code == 200


def test_an_unreadable_run_directory_counts_as_another_model(
        new_database: Any, two_runs: tuple[Path, Path]) -> None:
    """The database moved on and this process cannot tell whether its run directory holds the
    new model: it stops answering rather than guess (it never mixes two models)."""
    url = new_database("follow_unreadable")
    run_a, run_b = two_runs
    first = create_app(_settings(url, run_a, version_poll=0))
    with TestClient(first) as c1:
        from dynplayer.store.indexing import index_run

        index_run(run_b, _settings(url, run_b), echo=lambda _m: None)
        (run_a / "vectors.npy").unlink()
        assert first.state.service.follow_database() == "stale"
        assert c1.get("/readyz").status_code == 503


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_with_two_workers(new_database: Any, serve_run_dir: Path) -> None:
    """`dynplayer serve RUN --workers 2`: indexed once by the parent, answered by the workers,
    and stopped cleanly by SIGINT (Ctrl-C)."""
    url = new_database("workers")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dynplayer.cli", "serve", str(serve_run_dir), "--port", str(port),
         "--database-url", url, "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "DYNPLAYER_VERSION_POLL": "0.5"})
    try:
        base = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait(ready, timeout=90)
        ids = (serve_run_dir / "ids.txt").read_text().split()
        with httpx.Client(base_url=base, timeout=10) as client:
            for t in ids[:20]:  # keep-alive off per request below: spread over both workers
                r = client.get(f"/v1/tracks/{t}/similar", params={"k": 3},
                               headers={"Connection": "close"})
                assert r.status_code == 200 and len(r.json()["tracks"]) == 3
            assert client.get("/readyz").json()["model_version"] == run_version(serve_run_dir)
    finally:
        proc.send_signal(2)
        out, _ = proc.communicate(timeout=60)
    assert "2 worker processes" in out and "Traceback" not in out, out
    with connect(url, catalog_name_for(serve_run_dir)) as conn:  # `serve RUN` names it after RUN
        assert active_version(conn) == run_version(serve_run_dir)


def test_workers_stop_when_their_supervisor_is_killed(new_database: Any,
                                                      serve_run_dir: Path) -> None:
    """SIGKILL of `dynplayer serve --workers 2` must not leave workers holding the port."""
    import psutil

    url = new_database("workers_kill")
    port = _free_port()
    workers: list[psutil.Process] = []
    proc = subprocess.Popen(
        [sys.executable, "-m", "dynplayer.cli", "serve", str(serve_run_dir), "--port", str(port),
         "--database-url", url, "--workers", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def ready() -> bool:
            assert proc.poll() is None
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait(ready, timeout=90)
        workers = [p for p in psutil.Process(proc.pid).children(recursive=True)
                   if "spawn_main" in " ".join(p.cmdline())]
        assert len(workers) == 2
        proc.kill()
        proc.wait(timeout=10)
        gone, alive = psutil.wait_procs(workers, timeout=20)
        assert not alive, f"workers left running: {[p.pid for p in alive]}"
        with socket.socket() as s:  # the port is free again
            s.bind(("127.0.0.1", port))
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in workers:  # never leave one behind, even when the test fails
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()


def test_a_failed_reload_stops_the_process_loudly(
        new_database: Any, two_runs: tuple[Path, Path]) -> None:
    """The database moved to a model this process's run directory now holds, but loading it
    fails: the process must stop answering (503, the reason on /readyz), not go on answering
    from its old model against the new tables (the failure used to be logged at DEBUG)."""
    from dynplayer.errors import ArtifactError
    from dynplayer.store.indexing import index_run

    url = new_database("follow_reload_fails")
    run_a, run_b = two_runs
    calls: list[Path] = []

    def searcher_factory(run: Path) -> None:
        calls.append(run)
        if len(calls) > 1:  # the first load works; the reload finds a damaged text model
            raise ArtifactError(f"{run}/text: incomplete text model (missing model.npz)")

    first = create_app(_settings(url, run_a, version_poll=0.1),
                       searcher_factory=searcher_factory)
    with TestClient(first) as c1:
        ids = (run_a / "ids.txt").read_text().split()
        version_a = run_version(run_a)
        index_run(run_b, _settings(url, run_b), echo=lambda _m: None)
        for f in run_b.iterdir():  # run_a is given run_b's model, which another process indexed
            if f.is_file():
                shutil.copy2(f, run_a / f.name)
        # Between the index and the copy the poll may already see "indexed from another run"
        # (also a 503); the state under test is the one after the copy, whose reload fails.
        _wait(lambda: "reloading it" in (c1.get("/readyz").json().get("detail") or ""))
        ready = c1.get("/readyz").json()
        assert c1.get("/readyz").status_code == 503
        assert ready["model_version"] == version_a  # the old model, which it no longer serves
        assert "reloading it" in ready["detail"] and "missing model.npz" in ready["detail"]
        r = _similar(c1, ids[0])
        assert r.status_code == 503 and "missing model.npz" in r.json()["message"]
        calls.clear()  # the damage is repaired: the next poll reloads and answers again
        _wait(lambda: c1.get("/readyz").status_code == 200)
        assert c1.get("/readyz").json()["model_version"] == run_version(run_b)


def test_a_follower_fault_is_reported_not_swallowed(
        new_database: Any, two_runs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    url = new_database("follow_fault")
    run_a, _ = two_runs
    first = create_app(_settings(url, run_a, version_poll=0.1))
    with TestClient(first) as c1:
        assert c1.get("/readyz").status_code == 200
        service = first.state.service

        def broken() -> None:
            raise RuntimeError("follower bug")

        monkeypatch.setattr(service, "follow_database", broken)
        _wait(lambda: c1.get("/readyz").status_code == 503)
        assert "model follower failed (RuntimeError: follower bug)" in \
            c1.get("/readyz").json()["detail"]
