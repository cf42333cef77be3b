"""The evaluation benchmarks recorded in docs/benchmarks.md, and how their tables are updated.

Each benchmark owns one marked block inside the "Evaluation (issue 4)" section:
`<!-- bench:NAME -->` ... `<!-- /bench:NAME -->`; rerunning replaces only that block.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dynplayer.errors import ArtifactError
from dynplayer.eval.report import hubness_table, methods_table, peers_table, probe_table
from dynplayer.run import atomic_write_bytes

SECTION = "## Evaluation (issue 4)"
REFERENCE_UNIFORMITY = {0.0: (0.2827, 0.1886), 0.5: (0.2871, 0.1919), 1.0: (0.2848, 0.1909)}


def replace_block(doc: Path, name: str, text: str) -> None:
    """Put `text` in the block `name` of the evaluation section of `doc` (created if absent)."""
    doc = Path(doc)
    if not doc.exists():
        raise ArtifactError(f"{doc}: benchmarks file not found (run from the repository root)")
    src = doc.read_text()
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    if begin in src and end in src:
        head, rest = src.split(begin, 1)
        _, tail = rest.split(end, 1)
        new = head + block + tail
    else:
        if SECTION not in src:
            src = src.rstrip() + f"\n\n{SECTION}\n"
        head, tail = src.split(SECTION, 1)
        # append at the end of the section: before the next "## " heading
        nxt = tail.find("\n## ")
        body, rest = (tail, "") if nxt < 0 else (tail[:nxt], tail[nxt:])
        new = head + SECTION + body.rstrip() + "\n\n" + block + "\n" + rest
    atomic_write_bytes(doc, new.encode())


def evaluation_section(result: dict[str, Any], command: str, machine: str) -> str:
    """The MPD results block: command, machine, model, split, tables and verdict."""
    run = result["run"]
    cfg = ", ".join(f"{k}={v}" for k, v in run["config"].items()) or "config not recorded"
    t = result["timings"]
    lines = [
        f"Command: `{command}` (run from the repository root). Machine: {machine}. "
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; whole evaluation "
        f"{t['total']:.0f} s with {result['threads']} threads.", "",
        f"Dynplayer row: `{run['path']}` ({run['n_tracks']:,} tracks x {run['dim']}; {cfg}).",
        f"Split: {result['split']['source']}, {result['split']['n_playlists']:,} playlists "
        f"({result['split']['n_skipped']} skipped).", "",
        methods_table(result), "",
        f"**Verdict.** {result['verdict']['text']}", "",
    ]
    if result.get("peers"):
        lines += ["Peer hyperparameters, chosen on the validation split:", "",
                  peers_table(result), ""]
    if result.get("hubness"):
        lines += ["Hubness of the track vectors (10-NN graph):", "", hubness_table(result), ""]
    if result.get("probe"):
        lines += ["Genre linear probe:", "", probe_table(result), ""]
    return "\n".join(lines)


def uniformity_sweep(
    corpus_dir: Path,
    out: Path,
    values: list[float],
    sets: list[str],
    split: str,
    command: str,
    machine: str,
    *,
    log: Callable[[str], None] | None = None,
) -> str:
    """Train the pairwise objective at each uniformity weight, evaluate, and tabulate."""
    from dynplayer.eval.runner import EvalOptions, evaluate_run
    from dynplayer.train.config import load_train_config
    from dynplayer.train.loop import train_run

    say = log or (lambda _m: None)
    rows = []
    cfg = ""
    for u in values:
        train_cfg = load_train_config(None, ["objective=pairwise", *sets, f"uniformity={u}"])
        run_dir = Path(out) / f"u{u:g}"
        t0 = time.perf_counter()
        say(f"training u={u:g} -> {run_dir}")
        train_run(corpus_dir, run_dir, train_cfg, log=say)
        train_s = time.perf_counter() - t0
        res = evaluate_run(run_dir, EvalOptions(peers=[], split=split, probe=False), log=say)
        m, h = res["methods"]["dynplayer"], res["hubness"]["dynplayer"]
        rows.append((u, m, h, train_s))
        cfg = ", ".join(f"{k}={v}" for k, v in res["run"]["config"].items() if k != "uniformity")
    lines = [
        f"Command: `{command}`. Machine: {machine}. Measured "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Training config of every row "
        f"except u: {cfg}; {split} split. Reference figures from the issue beside ours.", "",
        "| u | Recall@10 | ref Recall@10 | NDCG@10 | ref NDCG@10 | Recall@20 | NDCG@20 | "
        "coverage@10 | mean pairwise cos | k-occ skewness | anti-hubs | Spearman(pop, k-occ) | "
        "train s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for u, m, h, train_s in rows:
        ref = REFERENCE_UNIFORMITY.get(u)
        rn, rr = (f"{ref[0]:.4f}", f"{ref[1]:.4f}") if ref else ("-", "-")
        lines.append(
            f"| {u:g} | {m['recall@10']:.4f} | {rr} | {m['ndcg@10']:.4f} | {rn} | "
            f"{m['recall@20']:.4f} | {m['ndcg@20']:.4f} | {m['coverage@10']:.4f} | "
            f"{h['mean_pairwise_cosine']:.4f} | {h['k_occurrence_skewness']:.2f} | "
            f"{h['anti_hub_share']:.1%} | {h['popularity_k_occurrence_spearman']:.3f} | "
            f"{train_s:.0f} |")
    return "\n".join(lines) + "\n"
