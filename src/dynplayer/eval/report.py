"""The evaluation report: side-by-side tables, the plain verdict, Markdown and HTML renderings."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any

from dynplayer.run import atomic_write_bytes

TABLE_KEYS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20", "recall@50", "ndcg@50",
              "r_precision", "coverage@10", "gini@10")
# The chart at the top of the report: the verdict's two metrics, the long list, and how widely
# the recommendations spread over the catalog.
CHART_KEYS = ("recall@10", "ndcg@10", "recall@50", "coverage@10")
CHART_FILE = "plots/headline_metrics.png"


def verdict(methods: dict[str, dict[str, Any]], model: str) -> dict[str, Any]:
    """Does `model` beat the best peer at Recall@10 and at NDCG@10? Said plainly. Dynplayer's
    own variants (names starting with "dynplayer") are not peers."""
    peers = {m: v for m, v in methods.items() if m != model and not m.startswith("dynplayer")}
    if not peers:
        return {"text": "No peers were evaluated, so there is no comparison.", "peers": 0}
    out: dict[str, Any] = {"peers": len(peers)}
    lines = []
    for key in ("recall@10", "ndcg@10"):
        best = max(peers, key=lambda m: peers[m][key])
        ours, theirs = methods[model][key], peers[best][key]
        beats = ours > theirs
        out[f"best_peer_{key}"] = best
        out[f"beats_best_peer_{key}"] = beats
        lines.append(f"{key}: Dynplayer {ours:.4f} {'beats' if beats else 'does NOT beat'} the "
                     f"best peer {best} {theirs:.4f} ({ours / theirs - 1:+.1%})"
                     if theirs > 0 else f"{key}: Dynplayer {ours:.4f}, best peer {best} 0")
    both = out["beats_best_peer_recall@10"] and out["beats_best_peer_ndcg@10"]
    head = ("Dynplayer beats the best peer at Recall@10 and NDCG@10."
            if both else "Dynplayer does NOT beat the best peer at both Recall@10 and NDCG@10.")
    out["beats_best_peer"] = both
    out["text"] = head + " " + "; ".join(lines) + "."
    return out


def headline_chart(methods: dict[str, dict[str, Any]], model: str, out_dir: Path,
                   keys: tuple[str, ...] = CHART_KEYS) -> str:
    """One PNG with a panel per headline metric, a bar per method (in every panel the methods'
    order by the first metric, best on top; `model` in colour, the others grey, each bar
    labelled with its value; a metric a method lacks is drawn as 0). Writes `out_dir/CHART_FILE`
    and returns that relative path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = tuple(k for k in keys if any(k in m for m in methods.values()))
    path = Path(out_dir) / CHART_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    height = 0.9 + 0.32 * max(len(methods), 1)
    fig, axes = plt.subplots(1, max(len(keys), 1), figsize=(2.9 * max(len(keys), 1), height),
                             squeeze=False)
    # One order for every panel (by the first metric, best on top), so that the method names
    # written beside the first panel hold for all of them.
    first = keys[0] if keys else ""
    names = sorted(methods, key=lambda n: float(methods[n].get(first, 0.0)))
    for ax, key in zip(axes[0], keys, strict=False):
        values = [float(methods[n].get(key, 0.0)) for n in names]
        rows = list(zip(names, values, strict=True))
        colours = ["#2d6cdf" if n == model else "#b8bcc6" for n in names]
        bars = ax.barh(range(len(rows)), values, color=colours, height=0.7)
        top = max(values, default=0.0)
        ax.set_xlim(0, top * 1.32 if top > 0 else 1)
        for bar, v in zip(bars, values, strict=True):
            ax.text(bar.get_width() + top * 0.02, bar.get_y() + bar.get_height() / 2,
                    f"{v:.3f}", va="center", fontsize=8)
        ax.set_yticks(range(len(rows)), names if ax is axes[0][0] else [""] * len(rows),
                      fontsize=9)
        ax.set_title(key, fontsize=10)
        ax.tick_params(axis="x", labelsize=7)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    fig.suptitle(f"Headline metrics per method ({model} in blue; higher is better)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return CHART_FILE


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if v == v else "-"  # NaN: no value
    return "-" if v is None else str(v)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def methods_table(result: dict[str, Any], keys: tuple[str, ...] = TABLE_KEYS) -> str:
    """Markdown table of every method's metrics, best value per column in bold."""
    methods = result["methods"]
    head = "| method | " + " | ".join(keys) + " |"
    sep = "|---|" + "---:|" * len(keys)
    lines = [head, sep]
    best = {}
    for k in keys:
        vals = [m[k] for m in methods.values() if k in m]
        # lower is better only for the exposure Gini
        best[k] = (min(vals) if k.startswith("gini") else max(vals)) if vals else None
    for name, m in methods.items():
        cells = []
        for k in keys:
            v = m.get(k)
            cell = _fmt(v) if v is not None else "-"
            cells.append(f"**{cell}**" if v is not None and v == best[k] and len(methods) > 1
                         else cell)
        params = result.get("peers", {}).get(name, {}).get("params")
        label = name if not params else f"{name} ({_params(params)})"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _params(params: dict[str, Any]) -> str:
    skip = {"seed", "threads"}
    return ", ".join(f"{k}={v}" for k, v in params.items() if k not in skip)


def hubness_table(result: dict[str, Any]) -> str:
    hub = result.get("hubness") or {}
    if not hub:
        return ""
    lines = ["| vectors | mean pairwise cos | cos to rest: rarest / most popular decile | "
             "k-occ skewness | max k-occ | anti-hubs | Spearman(pop, k-occ) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, h in hub.items():
        d = h["mean_cosine_by_popularity_decile"]
        lines.append(f"| {name} | {h['mean_pairwise_cosine']:.4f} | {_fmt(d[0])} / {_fmt(d[-1])} "
                     f"| {h['k_occurrence_skewness']:.2f} | {h['k_occurrence_max']} "
                     f"| {h['anti_hub_share']:.1%} | {h['popularity_k_occurrence_spearman']:.3f} |")
    return "\n".join(lines)


def probe_table(result: dict[str, Any]) -> str:
    probe = result.get("probe") or {}
    if not probe or "skipped" in probe:
        return f"Genre probe skipped: {probe.get('skipped', 'not run')}." if probe else ""
    first = next(iter(probe.values()))
    lines = [f"Multinomial logistic regression on {first['n_classes']} genre classes, "
             f"{first['n_train']:,} train / {first['n_test']:,} test tracks (stratified); "
             f"majority-class rate {first['majority_rate']:.4f}. Reference: Top-1 0.8177, "
             "Top-5 0.9751.", "",
             "| vectors | dim | Top-1 | Top-5 |", "|---|---:|---:|---:|"]
    for name, p in probe.items():
        lines.append(f"| {name} | {p['dim']} | {p['top1']:.4f} | {p['top5']:.4f} |")
    return "\n".join(lines)


def peers_table(result: dict[str, Any]) -> str:
    peers = result.get("peers") or {}
    if not peers:
        return ""
    lines = ["| peer | chosen on validation | validation Recall@10 per grid point | seconds |",
             "|---|---|---|---:|"]
    for name, info in peers.items():
        meta = ("val_recall@10", "fit_seconds")
        rows = info["validation"]
        scored = [r for r in rows if _is_number(r.get("val_recall@10"))]
        # A peer with nothing to tune (popularity) has one unscored row: say so, not "-: nan".
        grid = "; ".join(
            f"{_params({k: v for k, v in row.items() if k not in meta}) or 'defaults'}"
            f": {_fmt(row['val_recall@10'])}" for row in scored) or "nothing to tune"
        lines.append(f"| {name} | {_params(info['params']) or 'no parameters'} | {grid} | "
                     f"{info['seconds']:.0f} |")
    return "\n".join(lines)


def split_line(result: dict[str, Any]) -> str:
    s = result["split"]
    text = (f"{s['source']}: {s['n_playlists']:,} playlists evaluated, {s['n_skipped']:,} "
            "skipped (no visible or no held-out vocabulary track)")
    if "dropped_unknown" in s:
        d = s["dropped_unknown"]
        text += (f"; tracks outside the model's vocabulary dropped: {d['visible']:,} visible, "
                 f"{d['heldout']:,} held out")
    if s.get("warning"):
        text += f"; WARNING: {s['warning']}"
    if s.get("playlists_also_in_training"):
        text += f"; WARNING: {s['playlists_also_in_training']} playlists are training playlists"
    return text + "."


def markdown(result: dict[str, Any]) -> str:
    run = result["run"]
    cfg = ", ".join(f"{k}={v}" for k, v in run["config"].items()) or "config not recorded"
    parts = [
        "# Dynplayer evaluation", "",
        *([f"![headline metrics per method]({result['chart']})", ""]
          if result.get("chart") else []),
        f"Model: `{run['path']}` ({run['n_tracks']:,} tracks x {run['dim']}; {cfg}).", "",
        f"Split: {split_line(result)}", "",
        f"**Verdict.** {result['verdict']['text']}", "",
        "## Continuation metrics, the seed's protocol (held-out tracks of the head, ranked over "
        "the head; visible tracks masked; Recall@K over min(K, |held-out|))", "",
        methods_table(result), "",
    ]
    if result.get("field"):
        from dynplayer.eval.field_report import field_markdown

        parts += [field_markdown(result["field"]).replace("### ", "## ", 1)]
    if result.get("peers"):
        parts += ["## Peer tuning (validation split only)", "", peers_table(result), ""]
    if result.get("hubness"):
        parts += ["## Hubness (10-NN graph of the track vectors)", "", hubness_table(result), ""]
        for name, path in (result.get("plots") or {}).items():
            parts += [f"![{name}]({path})", ""]
    if result.get("probe"):
        parts += ["## Genre linear probe", "", probe_table(result), ""]
    t = result.get("timings", {})
    parts += [f"Total time {t.get('total', 0):.0f} s with {result.get('threads', 2)} threads; "
              "per stage: " + ", ".join(f"{k} {v:.0f}s" for k, v in t.items() if k != "total")
              + "."]
    return "\n".join(parts) + "\n"


def _md_table_to_html(md: str) -> str:
    """A markdown table as HTML, each column aligned as its separator says (`---:` right, for
    numbers; `---` left, for text)."""
    rows = [r for r in md.splitlines() if r.startswith("|")]
    if len(rows) < 2:
        return f"<p>{_inline(md)}</p>"
    align = ["right" if c.strip().endswith(":") else "left"
             for c in rows[1].strip().strip("|").split("|")]
    out = ["<table>"]
    for i, row in enumerate(r for j, r in enumerate(rows) if j != 1):
        tag = "th" if i == 0 else "td"
        cells = [c.strip() for c in row.strip("|").split("|")]
        out.append("<tr>" + "".join(
            f'<{tag} style="text-align:{align[n] if n < len(align) else "left"}">'
            f"{_inline(c)}</{tag}>" for n, c in enumerate(cells)) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _inline(text: str) -> str:
    """Markdown inline marks as HTML: `code` and **bold** (they showed as literal marks)."""
    escaped = html.escape(text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escaped)


def html_report(result: dict[str, Any], plot_dir: Path) -> str:
    """The same report as one self-contained HTML page (PNGs embedded as data URIs)."""
    md = markdown(result)
    body: list[str] = []
    block: list[str] = []

    def flush() -> None:
        if block:
            body.append(_md_table_to_html("\n".join(block)))
            block.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            block.append(line)
            continue
        flush()
        if line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("!["):
            rel = line[line.index("(") + 1:-1]
            data = base64.b64encode((plot_dir / rel).read_bytes()).decode()
            wide = ' class="wide"' if rel == result.get("chart") else ""
            body.append(f'<img alt="{html.escape(rel)}"{wide} '
                        f'src="data:image/png;base64,{data}">')
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
    flush()
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
             "padding:3px 8px}code{background:#f3f3f3;padding:0 3px}"
             "img{max-width:48%;margin:4px}img.wide{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Dynplayer evaluation"
            f"</title><style>{style}</style></head><body>\n" + "\n".join(body)
            + "\n</body></html>\n")


def write_reports(out_dir: Path, result: dict[str, Any]) -> list[str]:
    """Write report.md and report.html into `out_dir` (which already holds plots/)."""
    atomic_write_bytes(out_dir / "report.md", markdown(result).encode())
    atomic_write_bytes(out_dir / "report.html", html_report(result, out_dir).encode())
    return ["report.md", "report.html"]
