"""The update's fold-in rule chosen on validation (`dynplayer bench update --choose`).

Each rule (which tracks are eligible, N, calibration) updates a copy of the base run with every
held-back playlist (one update, no database), and the copies are compared with the base and the
retrain on the validation split: continuation Recall@10 and keyword -> tracks Recall@50. The
rule kept is the one with the highest mean of the two ratios to the retrain (the worse of the
two was the first rule tried: keyword recall hardly moves with the calibration, so it tied the
rules and left continuation unweighed), among the rules that recommend the tracks only the
update brings at least half as often as the retrain does (top-10 continuations plus top-50
keyword lists; vacuous when the retrain shows none, as with `--hold random`): recall alone
prefers hiding new tracks (a low calibration), which is not what an update is for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dynplayer.data.corpus import VAL, Corpus

GRID: tuple[tuple[str, int, float], ...] = tuple(
    (eligible, n, cal) for eligible, n in (("any", 10), ("selected", 2))
    for cal in (0.75, 0.9, 1.0))


def choose_rule(full: Corpus, base_run: Path, retrain_run: Path, files: list[Path],
                work: Path, special: np.ndarray,
                grid: tuple[tuple[str, int, float], ...] = GRID) -> dict[str, Any]:
    """Update a copy of `base_run` with `files` under each rule of `grid`; the validation
    figures of each, the base and the retrain; the chosen rule."""
    from dynplayer.update.apply import update_run
    from dynplayer.update.bench import HEADER, _copy_run, _rows, evaluate_models

    work.mkdir(parents=True, exist_ok=True)
    models: dict[str, Path] = {"base": base_run, "retrain": retrain_run}
    rules: dict[str, dict[str, Any]] = {}
    for eligible, n, cal in grid:
        name = f"{eligible}, N = {n}, calibrate {cal:g}"
        d = _copy_run(base_run, work / f"{eligible}-{n}-{cal:g}")
        rep = update_run(d, files, tracks=[f.with_suffix(".tracks.jsonl") for f in files],
                         eligible=eligible, min_playlists=n, calibrate=cal, progress=False)
        models[name] = d
        rules[name] = {"eligible": eligible, "min_playlists": n, "calibrate": cal,
                       "folded": rep.tracks_folded}
    val = full.playlists_in(VAL)
    results = evaluate_models(full, val, models, special)
    ref = results["retrain"]
    for name, rule in rules.items():
        r = results[name]
        rule["continuation_ratio"] = r["continuation"]["recall@10"] / max(
            ref["continuation"]["recall@10"], 1e-12)
        rule["keyword_ratio"] = r["keyword"]["recall@50"] / max(ref["keyword"]["recall@50"],
                                                                1e-12)
    def shown(r: dict[str, Any]) -> int:
        return int(r["continuation"]["shown_special"] + r["keyword"]["shown_special"])

    for name, rule in rules.items():
        rule["shown"] = shown(results[name])
        rule["shows_enough"] = rule["shown"] >= 0.5 * shown(ref)
    ok = [k for k in rules if rules[k]["shows_enough"]] or list(rules)
    pick = max(ok, key=lambda k: rules[k]["continuation_ratio"] + rules[k]["keyword_ratio"])
    lines = [f"validation split ({val.shape[0]:,} playlists), every held-back playlist in one "
             "update per rule:", "", *HEADER, *_rows(results), "",
             "| rule | tracks folded | continuation x retrain | keyword x retrain | new tracks "
             "recommended (retrain: " + f"{shown(ref):,})" + " |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {v['folded']:,} | {v['continuation_ratio']:.3f} | "
              f"{v['keyword_ratio']:.3f} | {v['shown']:,} |" for k, v in rules.items()]
    lines += ["", f"chosen (the highest mean of the two ratios among the rules recommending the "
              f"new tracks at least half as often as the retrain): {pick}"]
    return {"rules": rules, "results": results, "chosen": {**rules[pick], "name": pick},
            "table": "\n".join(lines)}
