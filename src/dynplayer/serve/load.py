"""Load generation and CPU metering for `dynplayer bench serve`: closed-loop client threads
with keep-alive connections over loopback, and the CPU time of the API and database processes
per request."""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Sample:
    start: float
    status: int  # -1: connection error
    seconds: float


@dataclass
class LoadRun:
    samples: list[Sample] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def summary(self, t0: float | None = None, t1: float | None = None) -> dict[str, Any]:
        chosen = [s for s in self.samples if (t0 is None or s.start >= t0)
                  and (t1 is None or s.start < t1)]
        ok = np.array([s.seconds for s in chosen if s.status == 200]) * 1000
        statuses: dict[str, int] = {}
        for s in chosen:
            statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
        span = (max(s.start for s in chosen) - min(s.start for s in chosen)) if chosen else 0
        out: dict[str, Any] = {"requests": len(chosen), "statuses": statuses,
                               "errors": len(chosen) - int(ok.shape[0]),
                               "throughput_rps": round(len(chosen) / span, 1) if span else 0.0}
        if ok.size:
            out.update({f"p{q}_ms": round(float(np.percentile(ok, q)), 2) for q in (50, 90, 99)})
            out["max_ms"] = round(float(ok.max()), 2)
        return out


def api_args(port: int, workers: int) -> list[str]:
    """The arguments, after a Python interpreter, of uvicorn serving the app on 127.0.0.1."""
    return ["-m", "uvicorn", "dynplayer.serve.app:create_app", "--factory", "--host",
            "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
            "--workers", str(workers)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(conn: http.client.HTTPConnection, method: str, path: str,
             body: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    conn.request(method, path, body=data, headers=hdrs)
    resp = conn.getresponse()
    return resp.status, resp.read()


def text_body(query: Any, k: int) -> dict[str, Any]:
    return {"text": query, "k": k}


def continue_body(seeds: Any, k: int) -> dict[str, Any]:
    return {"track_ids": list(seeds), "k": k}


class Clients:
    """`n` threads posting queries (keep-alive) until stopped: text queries by default, or
    what `body(query, k)` makes of each to `route`; with `body` None, a GET of `route` with
    `{q}` (the query, quoted) and `{k}` filled in."""

    def __init__(self, port: int, queries: list[Any], n: int, k: int, record: LoadRun,
                 route: str = "/v1/recommend/text",
                 body: Callable[[Any, int], dict[str, Any]] | None = text_body) -> None:
        self.port, self.queries, self.k, self.record = port, queries, k, record
        self.route, self.body = route, body
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(n)]

    def _run(self, i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        j = i
        while not self.stop.is_set():
            q = self.queries[j % len(self.queries)]
            j += len(self.threads)
            t0 = time.perf_counter()
            try:
                if self.body is None:
                    status, _ = request(conn, "GET", self.route.format(
                        q=urllib.parse.quote(str(q), safe=""), k=self.k))
                else:
                    status, _ = request(conn, "POST", self.route, self.body(q, self.k))
            except (OSError, http.client.HTTPException):
                status = -1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            with self.record.lock:
                self.record.samples.append(Sample(t0, status, time.perf_counter() - t0))
        conn.close()

    def __enter__(self) -> Clients:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


class CpuMeter:
    """CPU seconds spent by the API process (and its workers), PostgreSQL (the postmaster and its
    backends) and this benchmark process (the client threads) between `start` and `stop`."""

    def __init__(self, api_pid: int, postgres_pid: int | None) -> None:
        self.api_pid, self.postgres_pid = api_pid, postgres_pid
        self.begin: dict[str, float] = {}

    @staticmethod
    def _cpu(pid: int | None, children: bool = True) -> float:
        import psutil

        if pid is None:
            return 0.0
        try:
            root = psutil.Process(pid)
            procs = [root, *(root.children(recursive=True) if children else [])]
        except psutil.Error:
            return 0.0
        total = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass  # a backend that ended in between
        return total

    def read(self) -> dict[str, float]:
        """Cumulative CPU seconds; a process that exits in between takes its share with it (the
        API's pooled backends live as long as the load)."""
        return {"api": self._cpu(self.api_pid), "postgres": self._cpu(self.postgres_pid),
                "client": self._cpu(os.getpid(), children=False)}  # the API is our child

    def start(self) -> None:
        self.begin = self.read()

    def per_request_ms(self, end: dict[str, float], requests: int) -> dict[str, float]:
        out = {k: round((end[k] - self.begin[k]) * 1000 / max(requests, 1), 2) for k in end}
        out["total"] = round(sum(out.values()), 2)
        return out


def one_client(port: int, queries: list[Any], k: int, seconds: float, route: str,
               body: Callable[[Any, int], dict[str, Any]] | None) -> dict[str, Any]:
    """Latency of one closed-loop client posting `queries` in turn to `route` for `seconds`
    (after a second of warm-up, not counted)."""
    with Clients(port, queries, 1, k, LoadRun(), route, body):
        time.sleep(1.0)
    record = LoadRun()
    with Clients(port, queries, 1, k, record, route, body):
        time.sleep(seconds)
    return {"route": route, "k": k, **record.summary()}


def load_at(port: int, queries: list[str], clients: int, k: int, duration: float,
            cpu: CpuMeter, echo: Callable[[str], None]) -> dict[str, Any]:
    """One client, then `clients` clients, posting text queries at `k` tracks: latency,
    throughput, and the CPU per request of the API, PostgreSQL and the clients."""
    warm = LoadRun()
    with Clients(port, queries, clients, k, warm):
        time.sleep(min(5.0, duration / 4))
    single = LoadRun()
    with Clients(port, queries, 1, k, single):
        time.sleep(min(20.0, duration / 3))
    out: dict[str, Any] = {"one_client": single.summary()}
    echo(f"k={k}, load, 1 client: {json.dumps(out['one_client'])}")
    record = LoadRun()
    echo(f"load: {clients} clients, POST /v1/recommend/text k={k}, {duration:.0f}s ...")
    with Clients(port, queries, clients, k, record):
        cpu.start()
        n0 = len(record.samples)
        time.sleep(duration)
        cpu_end = cpu.read()
        n1 = len(record.samples)
    out["load"] = record.summary()
    out["cpu_ms_per_request"] = cpu.per_request_ms(cpu_end, n1 - n0)
    echo(f"k={k}, CPU per request under that load (ms): "
         f"{json.dumps(out['cpu_ms_per_request'])}")
    echo(f"k={k}, load: {json.dumps(out['load'])}")
    return out


def alternated(sides: dict[str, tuple[int, int]], queries: list[str], clients: int, k: int,
               rounds: int, window: float, echo: Callable[[str], None]) -> dict[str, Any]:
    """`clients` clients posting text queries at `k` to two APIs in turn (name -> (port,
    pid)): `rounds` windows of `window` seconds on each, the order flipped every round, so both
    see the same minutes of a shared machine. The API CPU per request of every window, each
    side's median and the ratio of the first side's to the second's: a change measured against
    the code before it, where one run's absolute figure drifts by 10-15%."""
    names = list(sides)
    per: dict[str, list[float]] = {n: [] for n in names}
    served: dict[str, list[int]] = {n: [] for n in names}
    errors = {n: 0 for n in names}
    for r in range(rounds):
        for n in names if r % 2 == 0 else names[::-1]:
            port, pid = sides[n]
            meter, record = CpuMeter(pid, None), LoadRun()
            with Clients(port, queries, clients, k, record):
                time.sleep(min(1.0, window / 4))  # connections up, threads running
                meter.start()
                n0 = len(record.samples)
                time.sleep(window)
                end = meter.read()
                n1 = len(record.samples)
            per[n].append(meter.per_request_ms(end, n1 - n0)["api"])
            served[n].append(n1 - n0)
            errors[n] += record.summary()["errors"]
    median = {n: round(float(np.median(v)), 2) for n, v in per.items()}
    out = {"k": k, "rounds": rounds, "window_s": window, "api_cpu_ms": per, "requests": served,
           "median_api_cpu_ms": median, "errors": errors,
           "ratio": round(median[names[0]] / max(median[names[1]], 1e-9), 3)}
    echo(f"k={k}, API CPU per request, alternated: {json.dumps(out)}")
    return out


def reindex_under_load(port: int, queries: list[str], clients: int, k: int,
                       token: str) -> dict[str, Any]:
    """`clients` clients under load while the API reindexes (`POST /v1/admin/reindex`)."""
    record = LoadRun()
    with Clients(port, queries, clients, k, record):
        time.sleep(2.0)
        t0 = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        status, body = request(conn, "POST", "/v1/admin/reindex",
                                headers={"Authorization": f"Bearer {token}"})
        conn.close()
        reindex_s = time.perf_counter() - t0
        time.sleep(2.0)
    out = record.summary()
    out.update({"reindex_status": status, "reindex_s": round(reindex_s, 2)})
    if status != 200:
        out["reindex_body"] = body.decode(errors="replace")[:300]
    return out


def restart_under_load(server: Any, port: int, queries: list[str], clients: int,
                       k: int, down_s: float = 5.0) -> dict[str, Any]:
    """`clients` clients under load while the database stops for `down_s` and starts again."""
    record = LoadRun()
    with Clients(port, queries, clients, k, record):
        time.sleep(2.0)
        server.halt()
        t_down = time.perf_counter()  # the server is down from here
        time.sleep(down_s)
        t_up = time.perf_counter()
        server.resume()
        t_started = time.perf_counter()
        deadline = t_started + 60
        recovered = None
        while time.perf_counter() < deadline:
            with record.lock:
                recent = [s for s in record.samples if s.start > time.perf_counter() - 0.5]
            if len(recent) >= clients and all(s.status == 200 for s in recent):
                recovered = min(s.start for s in recent)
                break
            time.sleep(0.1)
        time.sleep(2.0)
    during = [s for s in record.samples if t_down <= s.start < t_up]
    failed = [s for s in during if s.status != 200]
    statuses = sorted({s.status for s in record.samples})
    return {
        "down_s": down_s, "restart_s": round(t_started - t_up, 2),
        "requests_while_down": len(during),
        "statuses_while_down": sorted({s.status for s in during}),
        "max_failed_latency_ms": round(max((s.seconds for s in failed), default=0) * 1000, 1),
        "recovered_after_restart_s": None if recovered is None else
        round(recovered - t_started, 2),
        "statuses_overall": statuses,
        "after_recovery": record.summary(t0=recovered + 0.5) if recovered else None,
    }
