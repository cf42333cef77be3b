"""The evaluation report opens with a chart of the headline metrics per method (issue 13)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dynplayer.eval.report import CHART_FILE, headline_chart, html_report, markdown

BLUE = np.array([0x2D, 0x6C, 0xDF]) / 255
GREY = np.array([0xB8, 0xBC, 0xC6]) / 255


def _pixels(png: Path, colour: np.ndarray) -> int:
    import matplotlib.image

    img = matplotlib.image.imread(str(png))[..., :3]
    return int((np.abs(img - colour).max(axis=2) < 0.02).sum())


def _result(methods: dict[str, dict[str, float]]) -> dict[str, object]:
    return {
        "run": {"path": "runs/x", "n_tracks": 10, "dim": 4, "config": {}},
        "split": {"source": "corpus test split", "n_playlists": 5, "n_skipped": 0},
        "methods": methods, "verdict": {"text": "Dynplayer beats the best peer."},
        "timings": {"total": 1.0}, "threads": 1,
    }


def test_chart_draws_each_method_with_the_model_in_colour(tmp_path: Path) -> None:
    keys = {"recall@10": 0.3, "ndcg@10": 0.32, "recall@50": 0.31, "coverage@10": 0.2}
    methods = {"dynplayer": keys, "ease": {k: v / 2 for k, v in keys.items()},
               "popularity": {k: v / 10 for k, v in keys.items()}}
    rel = headline_chart(methods, "dynplayer", tmp_path)
    assert rel == CHART_FILE
    png = tmp_path / rel
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    blue, grey = _pixels(png, BLUE), _pixels(png, GREY)
    # One blue bar per panel, two grey ones at 1/2 and 1/10 of its length: the grey area is
    # about 0.6 of the blue one (bars have equal heights).
    assert blue > 2000 and 0.4 < grey / blue < 0.8

    # Halve the model's figures: now the grey bars outweigh the blue one.
    methods["dynplayer"] = {k: v / 4 for k, v in keys.items()}
    headline_chart(methods, "dynplayer", tmp_path)
    assert _pixels(png, GREY) > 2 * _pixels(png, BLUE)


def test_report_opens_with_the_chart(tmp_path: Path) -> None:
    methods = {"dynplayer": {"recall@10": 0.3, "ndcg@10": 0.3}, "ease": {"recall@10": 0.2,
                                                                         "ndcg@10": 0.25}}
    result = _result(methods)
    result["chart"] = headline_chart(methods, "dynplayer", tmp_path)
    md = markdown(result)
    first_image = md.index("![")
    assert md[first_image:].startswith(f"![headline metrics per method]({CHART_FILE})")
    assert first_image < md.index("Verdict") < md.index("## Continuation metrics")
    page = html_report(result, tmp_path)
    assert page.index('class="wide" src="data:image/png;base64,') < page.index("Verdict")
    # Without a chart (an old metrics.json) the report still renders.
    del result["chart"]
    assert "![" not in markdown(result)
