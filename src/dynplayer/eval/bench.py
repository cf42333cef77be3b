"""The evaluation benchmarks recorded in docs/benchmarks.md, and how their tables are updated.

Each benchmark owns one marked block inside the "Evaluation (issue 4)" section:
`<!-- bench:NAME -->` ... `<!-- /bench:NAME -->`; rerunning replaces only that block.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dynplayer.errors import ArtifactError
from dynplayer.eval.report import hubness_table, methods_table, peers_table, probe_table
from dynplayer.run import atomic_write_bytes

SECTION = "## Evaluation (issue 4)"


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


def _without_ndcg_by_category(text: str) -> str:
    """The field tables without the per-category NDCG (RUN/eval/report.md keeps it): the
    benchmarks page keeps the per-category R-precision, the target's other half."""
    start = text.find("NDCG by category:")
    end = text.find("**Verdict.**", start)
    return text if start < 0 or end < 0 else text[:start] + text[end:]


def field_section(result: dict[str, Any], command: str, machine: str) -> str:
    """The whole-catalogue block: command, machine, the field tables and the peers' settings."""
    from dynplayer.eval.field_report import field_markdown

    f = result["field"]
    lines = [f"Command: `{command}` (run from the repository root). Machine: {machine}. "
             f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; the field table "
             f"took {f['seconds']:.0f} s.", "",
             _without_ndcg_by_category(field_markdown(f).split("\n", 2)[2])]
    params = [f"{n} {info['params']}" for n, info in f.get("peers", {}).items()
              if "params" in info]
    if params:
        lines += ["Peer settings, chosen on the validation split's cases: "
                  + "; ".join(params) + "."]
    return "\n".join(lines)
