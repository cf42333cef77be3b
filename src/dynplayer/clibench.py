"""`dynplayer bench cli`: one-shot commands as a user runs them, each in a fresh process on a
warm disk: `similar`, `search`, `recommend` (with the ranker when the run has one) and bad
arguments that must be refused at once.

Every command runs once untimed (so the run's files are in the page cache, and what the
commands remember in the data directory's cache is there: run it with an empty
DYNPLAYER_DATA_DIR and that first call's wall time, reported beside, is a new user's first
call), then `repeat` times timed: wall time and the child's CPU time (user + system, from the
kernel's accounting of reaped children). On a shared machine the wall time follows the
neighbours, so the CPU time is reported beside it, and `--against CMD` times another
installation (e.g. an older checkout) interleaved with this one, command by command, for
ratios measured in the same minutes.
"""

from __future__ import annotations

import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dynplayer.errors import ConfigError, QueryError

TARGETS = {"similar": 3.0, "search": 3.0, "recommend": 5.0, "refused": 1.0}  # seconds of wall
QUERY = "rainy day jazz"


@dataclass(frozen=True)
class Case:
    kind: str  # similar | search | recommend | refused | floor
    label: str
    args: list[str]
    expect_rc: int = 0


@dataclass
class Timing:
    label: str
    kind: str
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    against_wall: list[float] = field(default_factory=list)
    against_cpu: list[float] = field(default_factory=list)
    against_rc: int | None = None
    first_wall: float | None = None  # the untimed first call (caches in DYNPLAYER_DATA_DIR)

    def row(self) -> dict[str, Any]:
        def med(v: list[float]) -> float | None:
            return round(statistics.median(v), 2) if v else None

        target = TARGETS.get(self.kind)
        wall = med(self.wall)
        out: dict[str, Any] = {
            "command": self.label, "kind": self.kind, "wall_p50_s": wall,
            "wall_max_s": round(max(self.wall), 2) if self.wall else None,
            "cpu_p50_s": med(self.cpu), "target_s": target,
            "first_wall_s": None if self.first_wall is None else round(self.first_wall, 2),
            "met": None if target is None or wall is None else bool(wall <= target)}
        if self.against_wall:
            out.update(against_wall_p50_s=med(self.against_wall),
                       against_cpu_p50_s=med(self.against_cpu), against_rc=self.against_rc)
        return out


def default_cases(run_dir: Path, seeds: Sequence[str] | None = None, track: str | None = None,
                  query: str = QUERY) -> list[Case]:
    """The commands timed. Without `seeds` / `track`: names of the run's most played tracks
    that the name resolver takes to be those tracks (the three first for `recommend`, the
    first for `similar`), so the cases exercise the lookup by name as a user types it."""
    from dynplayer.serve.resolve import TrackResolver
    from dynplayer.store.catalog import track_catalog

    run = str(run_dir)
    if seeds is None or track is None:
        cat = track_catalog(run_dir)
        resolver = TrackResolver(cat.track_ids, cat.names, cat.artists, cat.popularity)
        names: list[str] = []
        for row in sorted(range(len(cat.track_ids)), key=lambda r: -int(cat.popularity[r])):
            name = (cat.names[row] or "").lower()
            try:
                if name and resolver.resolve_name(name).row == row:
                    names.append(name)
            except QueryError:  # ambiguous: not a name a user would expect to work
                continue
            if len(names) == 3:
                break
        seeds = list(seeds) if seeds is not None else names
        track = track if track is not None else names[0]
    ranker = (run_dir / "ranker" / "manifest.json").exists()
    return [
        Case("floor", "dynplayer --help (interpreter + CLI)", ["--help"]),
        Case("similar", f"similar RUN {track!r} -k 10", ["similar", run, track, "-k", "10"]),
        Case("search", f"search RUN {query!r} -k 20", ["search", run, query, "-k", "20"]),
        Case("recommend", "recommend RUN " + " ".join(repr(s) for s in seeds)
             + f" -k 20 ({'ranker' if ranker else 'embedding: no ranker/'})",
             ["recommend", run, *seeds, "-k", "20"]),
        Case("refused", "search RUN jazz -k 100000", ["search", run, "jazz", "-k", "100000"], 2),
        Case("refused", "recommend RUN qqq-unknown-track", ["recommend", run,
                                                            "qqq-unknown-track"], 2),
        Case("refused", "similar RUN x -k 0", ["similar", run, "x", "-k", "0"], 2),
        Case("refused", "serve /no/such/run", ["serve", "/no/such/run"], 2),
    ]


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode, done.stderr


def run_cli_bench(cases: list[Case], *, repeat: int = 3, command: Sequence[str] | None = None,
                  against: Sequence[str] | None = None,
                  echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Time every case (`repeat` times after one warm-up run), through `command` (default:
    this interpreter's `-m dynplayer.cli`) and, interleaved, through `against` when given."""
    if not 1 <= repeat <= 50:
        raise ConfigError(f"--repeat must be from 1 to 50, got {repeat}")
    mine = list(command) if command else [sys.executable, "-m", "dynplayer.cli"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    timings = []
    load = [round(x, 2) for x in os.getloadavg()]
    for case in cases:
        timing = Timing(case.label, case.kind)
        # warm-up: files into the page cache, and what the commands remember into the data
        # directory's cache (`dynplayer.cache`); its wall time is reported as the first call's
        timing.first_wall, _, rc, err = _timed([*mine, *case.args], env)
        if rc != case.expect_rc:
            raise ConfigError(f"`{shlex.join([*mine, *case.args])}` exited {rc}, expected "
                              f"{case.expect_rc}: {err.strip().splitlines()[-1:] or ''}")
        if against:  # another version may fail otherwise (that is what it is compared for)
            timing.against_rc = _timed([*against, *case.args], env)[2]
        for _ in range(repeat):
            wall, cpu, _, _ = _timed([*mine, *case.args], env)
            timing.wall.append(wall)
            timing.cpu.append(cpu)
            if against:
                wall, cpu, _, _ = _timed([*against, *case.args], env)
                timing.against_wall.append(wall)
                timing.against_cpu.append(cpu)
        echo(f"  {case.label}: wall {statistics.median(timing.wall):.2f} s, CPU "
             f"{statistics.median(timing.cpu):.2f} s")
        timings.append(timing)
    return {"command": shlex.join(mine), "against": shlex.join(against) if against else None,
            "repeat": repeat, "cpus": os.cpu_count(), "load_before": load,
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "rows": [t.row() for t in timings], "cases": [asdict(c) for c in cases]}


def markdown(result: dict[str, Any]) -> str:
    """The result as the table benchmarks.md records."""
    against = result["against"] is not None
    head = "| command | wall p50 (max) | CPU p50 | first call | target | status |"
    rule = "|---|---:|---:|---:|---|---|"
    if against:
        head += " against: wall / CPU p50 |"
        rule += "---:|"
    lines = [f"`dynplayer bench cli`: {result['repeat']} timed runs each after a warm-up, "
             f"{result['measured_at']}, {result['cpus']} CPUs, load average "
             f"{result['load_before'][0]} -> {result['load_after'][0]}"
             + (f"; against `{result['against']}`" if against else ""), "", head, rule]
    for r in result["rows"]:
        status = "" if r["met"] is None else ("met" if r["met"] else "**not met**")
        target = f"<= {r['target_s']:g} s" if r["target_s"] else ""
        first = r.get("first_wall_s")
        line = (f"| `{r['command']}` | {r['wall_p50_s']:.2f} s ({r['wall_max_s']:.2f}) | "
                f"{r['cpu_p50_s']:.2f} s | {'' if first is None else f'{first:.2f} s'} | "
                f"{target} | {status} |")
        if against:
            rc = r["against_rc"]
            line += (f" {r['against_wall_p50_s']:.2f} s / {r['against_cpu_p50_s']:.2f} s"
                     + ("" if rc in (0, 2) else f" (exit {rc})") + " |")
        lines.append(line)
    return "\n".join(lines)


__all__ = ["Case", "default_cases", "markdown", "run_cli_bench"]
