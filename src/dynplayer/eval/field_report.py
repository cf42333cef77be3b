"""The whole-catalogue (field protocol) tables of `evaluate`'s report and of benchmarks.md."""

from __future__ import annotations

from typing import Any


def _f(v: Any, digits: int = 4) -> str:
    return f"{v:.{digits}f}" if isinstance(v, int | float) else "-"


def field_table(field: dict[str, Any]) -> str:
    """One row per method: the challenge's figures, Recall@500, coverage, and how much of what
    it recommends (and hits) lies outside the head."""
    lines = ["| method | R-precision | NDCG | clicks | Recall@500 | coverage | recs outside "
             "the head | their precision | hits outside the head |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, m in field["methods"].items():
        label = f"**{name}**" if name.startswith("dynplayer") else name
        lines.append(f"| {label} | {_f(m['r_precision'])} | {_f(m['ndcg'])} | "
                     f"{_f(m['clicks'], 2)} | {_f(m['recall@500'])} | {_f(m['coverage'], 3)} | "
                     f"{_f(m.get('tail_share'), 3)} | {_f(m.get('tail_precision'))} | "
                     f"{_f(m.get('tail_hit_share'), 3)} |")
    for name, info in field.get("peers", {}).items():
        if "skipped" in info:
            lines.append(f"| {name} | {info['skipped']} | | | | | | | |")
    return "\n".join(lines)


def categories_table(field: dict[str, Any], key: str = "r_precision") -> str:
    """`key` by category (columns) for every method (rows), with each category's size."""
    methods = field["methods"]
    cats = [c for c in field["categories"]
            if any(c in m["categories"] for m in methods.values())]
    sizes = {c: next(m["categories"][c]["n_playlists"] for m in methods.values()
                     if c in m["categories"]) for c in cats}
    head = "| method | " + " | ".join(f"{c} ({sizes[c]})" for c in cats) + " |"
    lines = [head, "|---|" + "---|" * len(cats)]
    for name, m in methods.items():
        cells = [_f(m["categories"][c][key]) if c in m["categories"] else "-" for c in cats]
        label = f"**{name}**" if name.startswith("dynplayer") else name
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict_text(field: dict[str, Any]) -> str:
    v = field.get("verdict")
    if not v:
        return "No Dynplayer row."
    o = v["overall"]
    parts = [f"{v['method']}: R-precision {_f(o['r_precision']['ratio'], 3)}x "
             f"({o['r_precision']['peer']}), NDCG {_f(o['ndcg']['ratio'], 3)}x "
             f"({o['ndcg']['peer']}) the best whole-catalogue peer overall"]
    below = [f"{c} ({_f(cell['r_precision']['ratio'], 2)}x / {_f(cell['ndcg']['ratio'], 2)}x)"
             for c, cell in v["categories"].items()
             if min(cell[k]["ratio"] or 0.0 for k in ("r_precision", "ndcg")) < 1.0]
    parts.append("below the best peer in: " + ", ".join(below) if below
                 else "at or above the best peer in every category with >= 50 playlists")
    return "; ".join(parts) + "."


def field_markdown(field: dict[str, Any]) -> str:
    skipped = "".join(f" {c}: {why}." for c, why in field.get("skipped", {}).items())
    return "\n".join([
        f"### Whole catalogue (the field's protocol: {field['protocol']})", "",
        f"{field['n_playlists']:,} playlists, 500 recommendations each over the "
        f"{field['n_catalogue']:,} tracks of the training playlists; the ground truth is every "
        "other track of the playlist, including tracks no model can know. R-precision gives "
        "0.25 for an artist match; clicks: pages of 10 before the first hit (51: none)."
        + skipped, "",
        field_table(field), "", "R-precision by category (playlists):", "",
        categories_table(field, "r_precision"), "", "NDCG by category:", "",
        categories_table(field, "ndcg"), "", f"**Verdict.** {verdict_text(field)}", ""])
