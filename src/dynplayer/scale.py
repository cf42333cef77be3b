"""`dynplayer bench scale`: the default pipeline (prepare -> train -> train-text -> index) on
MPD-shaped synthetic slice files at several sizes, with per-stage wall time, CPU time, peak
resident memory and disk, and the growth exponent of each between consecutive sizes.

Every stage runs as its own `dynplayer` process, so its peak RSS (`ru_maxrss` from wait4) is its
own; the embedded PostgreSQL server of `index` is a separate process and is not in that figure
(its data directory is in the disk column).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dynplayer.data.benchmark import machine
from dynplayer.errors import DynplayerError
from dynplayer.run import atomic_write_json

STAGES = ("prepare", "train", "train-text", "index")


def dir_bytes(path: Path) -> int:
    """Bytes of the regular files under `path` (0 when it does not exist)."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            p = Path(root) / f
            if not p.is_symlink():
                try:
                    total += p.stat().st_size
                except OSError:  # a file removed while walking (PostgreSQL's temp files)
                    pass
    return total


def run_stage(argv: list[str], *, env: dict[str, str], log: Path,
              kill_after: float | None = None) -> dict[str, Any]:
    """Run one CLI stage as a child process; wall, CPU and peak RSS of that process alone.
    With `kill_after`, the process is SIGKILLed after that many seconds if still running (a
    crash or an OOM kill as the stage sees it) and the figures say `killed`."""
    t0 = time.perf_counter()
    killed = threading.Event()
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=env)
        timer = None
        if kill_after is not None:
            def _kill() -> None:
                if proc.poll() is None:
                    killed.set()
                    proc.send_signal(signal.SIGKILL)
            timer = threading.Timer(kill_after, _kill)
            timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        if timer is not None:
            timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if killed.is_set():
        return {"wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
                "peak_rss_mb": round(usage.ru_maxrss / 1024.0, 1), "killed": True}
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
        raise DynplayerError(f"bench scale: `{' '.join(argv[2:4])}` failed with exit "
                             f"{proc.returncode}: {tail[0] if tail else '(no output)'} "
                             f"(log: {log})")
    return {"wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024.0, 1)}


def _cli() -> list[str]:
    return [sys.executable, "-c", "from dynplayer.cli import main; main()"]


def generate_slices(n_playlists: int, out: Path, seed: int) -> dict[str, Any]:
    """MPD-shaped slice files for `n_playlists` (in this process; not a pipeline stage)."""
    import numpy as np

    from dynplayer.data.synthetic import mpd_shaped, write_mpd_slices

    t0 = time.perf_counter()
    corpus = mpd_shaped(n_playlists, seed=seed)
    files = write_mpd_slices(corpus, out)
    return {"generate_s": round(time.perf_counter() - t0, 1), "files": len(files),
            "occurrences": corpus.n_occurrences,
            "mean_length": round(corpus.n_occurrences / max(1, corpus.n_playlists), 1),
            "catalogue_tracks": int(np.unique(corpus.occ_track).shape[0]),
            "slice_bytes": dir_bytes(out)}


def growth(sizes: Sequence[int], values: Sequence[float]) -> list[float | None]:
    """Exponent b of value ~ size^b between consecutive sizes (None where a value is ~0)."""
    out: list[float | None] = []
    for (n1, v1), (n2, v2) in zip(zip(sizes, values, strict=True),
                                  zip(sizes[1:], values[1:], strict=True), strict=False):
        if v1 <= 0.05 or v2 <= 0.05 or n1 == n2:
            out.append(None)
        else:
            out.append(round(math.log(v2 / v1) / math.log(n2 / n1), 2))
    return out


def bench_pipeline(work: Path, sizes: Sequence[int], *, train_sets: Sequence[str] = (),
                   text_sets: Sequence[str] = (), seed: int = 0, keep: bool = False,
                   reuse: bool = False, kill_train: float | None = None,
                   serve: bool = False, serve_duration: float = 20.0,
                   from_stage: str | None = None,
                   say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the pipeline at each size under `work`; return the report (also written to
    work/scale.json). Sizes are run smallest first; each size's files are removed after its
    figures are taken unless `keep`. With `reuse`, sizes already in work/scale.json from a run
    with the same settings and seed are kept as they are (marked `reused`, with the time they
    were measured), so a larger size extends an earlier run. With `kill_train`, training is
    SIGKILLed after that many seconds and continued with `train --resume`: the row's
    `train_interrupted` says what the killed run left and where the resumed one went on, and the
    train figures are the two processes together.

    With `serve`, each size's store is then measured as a user serves it (`bench serve --store`,
    its own process: HNSW top-50 overlap with exact search, the served continuation and text
    latency at one client); that is a measurement, not a pipeline stage, and not in the total.
    `from_stage` (a stage, or "serve") goes on in the files a `keep` run of the same size left,
    with the earlier stages' figures as that run recorded them (WORK/pN/stages.json, else
    WORK/scale.json)."""
    if from_stage is not None and from_stage not in (*STAGES, "serve"):
        raise DynplayerError(f"bench scale --from-stage: expected one of "
                             f"{', '.join((*STAGES, 'serve'))}, got {from_stage!r}")
    if from_stage == "serve" and not serve:
        raise DynplayerError("bench scale --from-stage serve needs --serve")
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"machine": machine(), "command_sizes": list(sizes),
                              "train_sets": list(train_sets), "text_sets": list(text_sets),
                              "seed": seed, "sizes": []}
    previous = _reusable(work / "scale.json", report) if reuse else {}
    for n in sorted(sizes):
        if n in previous:
            say(f"[{n:,} playlists] reused from {work / 'scale.json'} "
                f"(measured {previous[n].get('measured_at', 'earlier')})")
            report["sizes"].append({**previous[n], "reused": True})
            _add_growth(report)
            continue
        d = work / f"p{n}"
        done: dict[str, Any] = {}
        if from_stage is not None:
            done = _earlier_stages(work, d, n, from_stage, report)
            gen = done["gen"]
            say(f"[{n:,} playlists] from {from_stage}: the earlier stages as measured "
                f"{done.get('measured_at', 'before')} ({d})")
        else:
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            say(f"[{n:,} playlists] generating MPD-shaped slices")
            gen = generate_slices(n, d / "mpd", seed)
        env = {**os.environ, "DYNPLAYER_DATA_DIR": str(d / "data")}
        env.pop("DYNPLAYER_DATABASE_URL", None)  # always the size's own embedded database
        corpus, run = d / "corpus", d / "run"
        argvs = {
            "prepare": [*_cli(), "prepare", str(d / "mpd"), "--out", str(corpus)],
            "train": [*_cli(), "train", str(corpus), "--out", str(run),
                      *[a for s in train_sets for a in ("--set", s)]],
            "train-text": [*_cli(), "train-text", str(run),
                           *[a for s in text_sets for a in ("--set", s)]],
            "index": [*_cli(), "index", str(run)],
        }
        outputs = {"prepare": corpus, "train": run, "train-text": run / "text",
                   "index": d / "data"}
        row: dict[str, Any] = {"playlists": n, **gen, "stages": dict(done.get("stages", {})),
                               "measured_at": done.get("measured_at") or time.strftime(
                                   "%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if from_stage is not None:
            row["resumed_from"] = from_stage
        for stage in STAGES:
            if stage in row["stages"]:
                continue
            say(f"[{n:,} playlists] {stage}")
            if stage == "train" and kill_train is not None:
                fig, row["train_interrupted"] = _train_killed_and_resumed(
                    argvs[stage], env=env, d=d, run=run, kill_after=kill_train, say=say)
            else:
                fig = run_stage(argvs[stage], env=env, log=d / f"{stage}.log")
            size = dir_bytes(outputs[stage])
            if stage == "train":  # the run directory minus what later stages add
                size -= dir_bytes(run / "text")
            fig["disk_mb"] = round(size / 2**20, 2)
            fig["disk_bytes"] = size
            row["stages"][stage] = fig
            say(f"[{n:,} playlists] {stage}: {fig['wall_s']} s wall, {fig['cpu_s']} s CPU, "
                f"peak RSS {fig['peak_rss_mb']:,.0f} MiB, disk {fig['disk_mb']:,.0f} MiB")
            atomic_write_json(d / "stages.json", {"gen": gen, "stages": row["stages"],
                                                  "measured_at": row["measured_at"]})
        counts = json.loads((corpus / "manifest.json").read_text())["counts"]
        metrics = json.loads((run / "metrics.json").read_text())
        row["corpus"] = {k: counts.get(k) for k in ("playlists", "occurrences", "tracks",
                                                    "selected_tracks", "train_playlists")}
        row["train"] = {k: metrics.get(k) for k in ("val_recall@10", "n_items", "train_seconds",
                                                    "playlists_per_s", "set_softmax")}
        row["train"]["epochs"] = [m.get("epochs") for m in metrics.get("members", [])]
        row["total_wall_s"] = round(sum(s["wall_s"] for s in row["stages"].values()), 1)
        row["max_peak_rss_mb"] = max(s["peak_rss_mb"] for s in row["stages"].values())
        if serve:
            say(f"[{n:,} playlists] serve (bench serve --store; not a pipeline stage)")
            row["serve"] = serve_figures(
                run_stage([*_cli(), "bench", "serve", str(run), "--store", "--no-reliability",
                           "--no-track-search",
                           "--duration", f"{serve_duration:g}", "--out", str(d / "serve.json")],
                          env=env, log=d / "serve.log"),
                json.loads((d / "serve.json").read_text()))
            say(f"[{n:,} playlists] serve: {json.dumps(row['serve'])}")
        report["sizes"].append(row)
        if not keep:
            shutil.rmtree(d, ignore_errors=True)
        _add_growth(report)
        (work / "scale.json").write_text(json.dumps(report, indent=2))
    return report


def serve_figures(fig: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    """What `bench serve --store` measured that the scale targets name: HNSW top-50 overlap
    with exact search (mean, min), and p50 / p99 at one client of the served continuation and
    of text queries at each k; with the measuring process's own wall time and peak RSS."""
    recall = results.get("recall", {})
    one = {"continue": results.get("continue_one_client", {}),
           "similar": results.get("similar_one_client", {}),
           **{f"text_k{kk}": v.get("one_client", {})
              for kk, v in results.get("load", {}).items()}}
    return {"wall_s": fig["wall_s"], "peak_rss_mb": fig["peak_rss_mb"],
            "shared_buffers": results.get("shared_buffers"),
            "overlap": {w: {s: recall[w][s] for s in ("mean", "min") if s in recall[w]}
                        for w in ("similar", "continue", "text", "text_playlists")
                        if w in recall},
            "one_client": {w: {q: v[q] for q in ("p50_ms", "p99_ms", "errors") if q in v}
                           for w, v in one.items() if v}}


def _earlier_stages(work: Path, d: Path, n: int, from_stage: str,
                    report: dict[str, Any]) -> dict[str, Any]:
    """The figures of the stages before `from_stage` that a kept run of size `n` recorded."""
    before = STAGES if from_stage == "serve" else STAGES[:STAGES.index(from_stage)]
    if not d.is_dir():
        raise DynplayerError(f"bench scale --from-stage {from_stage}: no files of {n:,} "
                             f"playlists at {d} (run that size with --keep first)")
    done: dict[str, Any] | None = None
    if (d / "stages.json").exists():
        done = json.loads((d / "stages.json").read_text())
    elif (work / "scale.json").exists():
        old = json.loads((work / "scale.json").read_text())
        if all(old.get(k, v) == report[k] for k, v in
               (("train_sets", []), ("text_sets", []), ("seed", 0))):
            for r in old.get("sizes", []):
                if int(r["playlists"]) == n:
                    done = {"gen": {k: r[k] for k in ("generate_s", "files", "occurrences",
                                                      "mean_length", "catalogue_tracks",
                                                      "slice_bytes") if k in r},
                            "stages": r["stages"], "measured_at": r.get("measured_at")}
    missing = [s for s in before if done is None or s not in done.get("stages", {})]
    if done is None or missing:
        raise DynplayerError(f"bench scale --from-stage {from_stage}: {d} has no figures of "
                             f"{', '.join(missing)} with these settings (stages.json or "
                             f"{work / 'scale.json'})")
    done["stages"] = {s: done["stages"][s] for s in before}
    return done


def _train_killed_and_resumed(argv: list[str], *, env: dict[str, str], d: Path, run: Path,
                              kill_after: float, say: Callable[[str], None],
                              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train, SIGKILL it after `kill_after` s, check what it left, then `train --resume`."""
    first = run_stage(argv, env=env, log=d / "train.log", kill_after=kill_after)
    if not first.get("killed"):
        say(f"train finished before {kill_after:g} s: nothing to resume")
        return first, {"killed": False, "kill_after_s": kill_after}
    left = sorted(p.name for p in run.iterdir()) if run.exists() else []
    where = _checkpoint_state(run)
    say(f"train killed after {first['wall_s']} s; left {left}; checkpoint {where}")
    resumed = run_stage([*argv, "--resume"], env=env, log=d / "train-resume.log")
    info = {"killed": True, "kill_after_s": kill_after, "killed_run": first,
            "files_left": left, "checkpoint": where, "resumed_run": resumed}
    fig = {"wall_s": round(first["wall_s"] + resumed["wall_s"], 1),
           "cpu_s": round(first["cpu_s"] + resumed["cpu_s"], 1),
           "peak_rss_mb": max(first["peak_rss_mb"], resumed["peak_rss_mb"])}
    return fig, info


def _checkpoint_state(run: Path) -> dict[str, Any] | None:
    """member / epoch / step of the run's checkpoint (None when there is none)."""
    from dynplayer.train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(run) if run.exists() else None
    if ckpt is None:
        return None
    return {k: ckpt["state"].get(k) for k in ("member", "epoch", "step")}


def _reusable(path: Path, report: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The rows of an earlier scale.json whose settings match this run's (by size)."""
    if not path.exists():
        return {}
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DynplayerError(f"bench scale --reuse: cannot read {path}: {exc}") from exc
    same = all(old.get(k, d) == report[k] for k, d in
               (("train_sets", []), ("text_sets", []), ("seed", 0)))
    if not same:
        raise DynplayerError(f"bench scale --reuse: {path} was measured with other settings "
                             f"(--set/--text-set/--seed); use another --work or drop --reuse")
    return {int(r["playlists"]): r for r in old.get("sizes", [])}


def _add_growth(report: dict[str, Any]) -> None:
    rows = report["sizes"]
    sizes = [r["playlists"] for r in rows]
    report["growth"] = {
        stage: {key: growth(sizes, [r["stages"][stage][key] for r in rows])
                for key in ("wall_s", "cpu_s", "peak_rss_mb", "disk_mb")}
        for stage in STAGES}


def table(report: dict[str, Any]) -> str:
    """The report as a markdown table: one row per (size, stage), exponents to the previous
    size in brackets."""
    lines = ["| playlists | stage | wall s | CPU s | peak RSS MiB | disk MiB |",
             "|---:|---|---:|---:|---:|---:|"]
    rows = report["sizes"]
    for i, r in enumerate(rows):
        for stage in STAGES:
            s = r["stages"][stage]
            cells = []
            for key in ("wall_s", "cpu_s", "peak_rss_mb", "disk_mb"):
                b = report["growth"][stage][key][i - 1] if i > 0 else None
                cells.append(f"{s[key]:,}" + (f" (^{b})" if b is not None else ""))
            lines.append(f"| {r['playlists']:,} | {stage} | " + " | ".join(cells) + " |")
        lines.append(f"| {r['playlists']:,} | **all** | {r['total_wall_s']:,} | | "
                     f"{r['max_peak_rss_mb']:,} (max) | |")
    served = [r for r in rows if "serve" in r]
    if served:
        lines += ["", "| playlists | served | p50 ms (1 client) | p99 ms | HNSW top-50 overlap "
                      "(mean / min) |", "|---:|---|---:|---:|---|"]
        for r in served:
            sv = r["serve"]
            for what, lat in sv["one_client"].items():
                ov = sv["overlap"].get("text" if what.startswith("text") else what, {})
                lines.append(f"| {r['playlists']:,} | {what} | {lat.get('p50_ms', '-')} | "
                             f"{lat.get('p99_ms', '-')} | {ov.get('mean', '-')} / "
                             f"{ov.get('min', '-')} |")
            if "similar" in sv["overlap"] and "similar" not in sv["one_client"]:
                ov = sv["overlap"]["similar"]
                lines.append(f"| {r['playlists']:,} | similar | | | {ov['mean']} / {ov['min']} |")
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    """Log-log wall time and peak RSS per stage against playlists."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["sizes"]
    sizes = [r["playlists"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for stage in STAGES:
        for ax, key in zip(axes, ("wall_s", "peak_rss_mb"), strict=True):
            ax.plot(sizes, [max(r["stages"][stage][key], 0.1) for r in rows], marker="o",
                    label=stage)
    for ax, label in zip(axes, ("wall time (s)", "peak RSS (MiB)"), strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("playlists")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    if len(sizes) >= 2:  # the linear reference through the first point
        s0, w0 = sizes[0], rows[0]["total_wall_s"]
        axes[0].plot(sizes, [w0 * n / s0 for n in sizes], "k--", alpha=0.4, label="linear")
    axes[0].legend(fontsize=8)
    fig.suptitle("dynplayer bench scale: " + ", ".join(f"{n:,}" for n in sizes))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
