"""`dynplayer bench confidence`: how often each verdict of `text.confidence` falls on real
captions and on queries the model cannot answer, and whether the confidence is calibrated.

Real queries: the validation and test playlists' captions (Korean loanwords bridged), as
`bench text` asks them. Unanswerable queries: the seeded random letter strings the thresholds
were chosen against (`noise_queries`), and a hand-written probe (JSON lines `{"query", "kind"}`,
default docs/probes/nothing-close.jsonl) that chose nothing. Calibration: per decile of the
predicted confidence on the test captions, the predicted and the observed share whose top 20
holds a track of the playlist.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from dynplayer.errors import ConfigError, DataError
from dynplayer.text.confidence import HIT_K, VERDICTS, noise_queries


def read_probe(path: Path) -> list[tuple[str, str]]:
    """(query, kind) per line of a JSON-lines probe; a bad line is a DataError naming it."""
    out = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the probe ({exc})", file=str(path)) from exc
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            out.append((str(obj["query"]), str(obj.get("kind", "probe"))))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(f"not a {{\"query\", \"kind\"}} object ({exc})", file=str(path),
                            line=n) from exc
    if not out:
        raise DataError("no queries", file=str(path))
    return out


def _shares(verdicts: list[str]) -> dict[str, float]:
    c = Counter(verdicts)
    return {v: round(c[v] / max(len(verdicts), 1), 4) for v in VERDICTS}


def run_bench(run_dir: Path, probe: Path | None = None) -> dict[str, Any]:
    from dynplayer.text.evaluate import prepare_eval
    from dynplayer.text.search import TextSearcher

    searcher = TextSearcher.load(run_dir)
    if searcher.calibration is None:
        raise ConfigError(f"{run_dir}: the text model has no calibration (rerun `dynplayer "
                          "train-text RUN_DIR --calibrate-only`)")
    col = {t: i for i, t in enumerate(searcher.track_ids)}
    out: dict[str, Any] = {"calibration": {k: getattr(searcher.calibration, k) for k in
                                           ("intercept", "w_match", "w_unknown", "weak_below",
                                            "nothing_below")}}
    for split in ("val", "test"):
        ev = prepare_eval(searcher, split)
        verdicts, conf, hit = [], [], []
        for i, q in enumerate(ev.queries):
            r = searcher.search(q, HIT_K, bridge=False)
            verdicts.append(str(r.match))
            conf.append(float(r.confidence or 0.0))
            rel = set(ev.relevant[i].indices.tolist())
            hit.append(any(col[t.track_id] in rel for t in r.tracks))
        out[split] = {"queries": len(verdicts), **_shares(verdicts)}
        if split == "test":
            out["test_calibration"] = deciles(np.array(conf), np.array(hit))
    noise = [str(searcher.search(q, HIT_K).match) for q in noise_queries()]
    out["noise"] = {"queries": len(noise), **_shares(noise)}
    if probe is not None:
        rows = read_probe(probe)
        got = [(kind, str(searcher.search(q, HIT_K).match)) for q, kind in rows]
        out["probe"] = {"file": str(probe), "queries": len(got),
                        **_shares([v for _, v in got]),
                        "by_kind": {kind: {"queries": sum(k == kind for k, _ in got),
                                           **_shares([v for k, v in got if k == kind])}
                                    for kind in dict.fromkeys(k for k, _ in got)}}
    return out


def deciles(conf: np.ndarray, hit: np.ndarray, bins: int = 5) -> list[dict[str, float]]:
    """Predicted vs observed hit rate per equal-count bin of the predicted confidence."""
    order = np.argsort(conf, kind="stable")
    return [{"n": int(part.size), "predicted": round(float(conf[part].mean()), 3),
             "observed": round(float(hit[part].mean()), 3)}
            for part in np.array_split(order, bins) if part.size]


def format_report(r: dict[str, Any]) -> str:
    def row(name: str, d: dict[str, Any]) -> str:
        return (f"| {name} | {d['queries']} | {d['close']:.1%} | {d['weak']:.1%} | "
                f"{d['nothing']:.1%} |")

    lines = ["| queries | n | close | weak match | nothing close |", "|---|---|---|---|---|",
             row("validation captions (real)", r["val"]), row("test captions (real)", r["test"]),
             row("random letter strings (chose the thresholds)", r["noise"])]
    if "probe" in r:
        lines.append(row(f"probe {Path(r['probe']['file']).name} (chose nothing)", r["probe"]))
        lines += [row(f"  probe: {kind}", d) for kind, d in r["probe"]["by_kind"].items()]
    lines += ["", "calibration on test captions (P(a track of the playlist in the top 20)): " +
              "; ".join(f"predicted {b['predicted']:.2f} observed {b['observed']:.2f} (n "
                        f"{b['n']})" for b in r["test_calibration"])]
    return "\n".join(lines)


__all__ = ["deciles", "format_report", "read_probe", "run_bench"]
