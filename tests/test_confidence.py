"""How well a text query matched the captions (`dynplayer.text.confidence`): the pieces worked
out by hand, the calibration train-text writes on the planted corpus, and the verdict on the
searcher, the API, the Python API and the CLI."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from dynplayer.text.confidence import (
    Calibration,
    Vocabulary,
    fit_logistic,
    match_score,
    noise_queries,
)
from dynplayer.text.search import TextSearcher

NOISE = "asdkjh qwpoe zzxv"


def test_match_score_vocabulary_and_verdicts() -> None:
    sims = np.array([0.9, 0.7] + [0.5] * 60)
    assert match_score(sims) == pytest.approx(2 * 0.9 - 0.5)  # the 50th, not the 62nd
    assert match_score(np.array([0.6, 0.4])) == pytest.approx(0.8)
    assert match_score(np.array([])) == 0.0
    vocab = Vocabulary(["rainy", "day", "jazz", "beyonce"])
    assert vocab.unknown("qwpoe zzxv") and not vocab.unknown("Rainy zzxv")
    assert not vocab.unknown("Beyoncé")  # folded like the metadata match
    assert not vocab.unknown("비 오는 날")  # no Latin word: no evidence either way
    cal = Calibration(intercept=-1.0, w_match=2.0, w_unknown=-0.5, weak_below=0.5,
                      nothing_below=0.65)
    assert cal.verdict(0.6, unknown=True) == "nothing"
    assert cal.verdict(0.6, unknown=False) == "close"
    assert cal.verdict(0.45, unknown=False) == "weak"
    assert cal.verdict(0.3, unknown=True, full_match=True) == "close"  # names an artist
    assert cal.confidence(0.5, False) == pytest.approx(0.5)
    assert cal.confidence(0.5, True) == pytest.approx(1 / (1 + np.exp(0.5)))


def test_logistic_fit_is_the_maximum_likelihood() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y = rng.random(400) < 1 / (1 + np.exp(-(0.3 + 1.5 * x[:, 0] - x[:, 1])))
    w = fit_logistic(x, y, l2=0.0)
    xb = np.c_[np.ones(400), x]
    p = 1 / (1 + np.exp(-(xb @ w)))
    np.testing.assert_allclose(xb.T @ (p - y), 0.0, atol=1e-8)  # the score equations hold
    assert w[1] > 1.0 and w[2] < -0.5


def test_noise_is_seeded_letters() -> None:
    assert noise_queries(5) == noise_queries(5) != noise_queries(5, seed=1)
    assert all(q.replace(" ", "").isalpha() and q.islower() for q in noise_queries(50))


def test_train_text_writes_the_calibration(serve_run_dir: Path,
                                           text_searcher: TextSearcher) -> None:
    d = serve_run_dir / "text"
    assert (d / "confidence.json").exists() and (d / "words.txt").exists()
    cal = text_searcher.calibration
    assert cal is not None and text_searcher.vocabulary is not None
    v = cal.validation
    # chosen so: few validation captions are "nothing close", most random strings are
    assert v["captions_nothing"] <= 0.05 and v["noise_nothing"] >= 0.6, v
    meta = json.loads((d / "config.json").read_text())
    assert meta["metrics"]["confidence"] == v


def test_calibration_reads_at_most_val_playlists_captions(text_searcher: TextSearcher) -> None:
    """The calibration searches at most `val_playlists` validation captions (a seeded sample:
    at 1M playlists all 100,000 took most of train-text's time); the planted run's all."""
    from dataclasses import replace

    from dynplayer.text.confidence import calibrate

    every = text_searcher.calibration.validation["queries"]  # type: ignore[union-attr]
    whole = text_searcher.cfg
    try:
        text_searcher.cfg = replace(whole, val_playlists=every // 2)
        first, _ = calibrate(text_searcher)
        again, _ = calibrate(text_searcher)
    finally:
        text_searcher.cfg = whole
    assert every > 10 and first.validation["queries"] == every // 2
    assert first.validation == again.validation  # the same sample each time


def common_captions(searcher: TextSearcher, n: int = 3) -> list[str]:
    """The planted corpus's most frequent captions: queries its captions match verbatim."""
    return [c for c, _ in Counter(searcher.playlist_captions).most_common(n)]


def test_the_searcher_says_noise_is_nothing_close(text_searcher: TextSearcher) -> None:
    noise = text_searcher.search(NOISE, k=10)
    assert noise.match == "nothing" and noise.tracks  # the nearest tracks, flagged
    for caption in common_captions(text_searcher):
        good = text_searcher.search(caption, k=10)
        assert good.match == "close", caption
        assert good.confidence is not None and noise.confidence is not None
        assert good.confidence >= noise.confidence
    # an artist's name is close whatever the captions say
    artist = next(a for a in text_searcher.track_artists if a)
    assert text_searcher.search(artist, k=5).match == "close"


def test_without_a_calibration_nothing_is_claimed(serve_run_dir: Path, tmp_path: Path,
                                                  copy_run) -> None:  # type: ignore[no-untyped-def]
    run = copy_run(serve_run_dir, tmp_path / "run")
    (run / "text" / "confidence.json").unlink()
    searcher = TextSearcher.load(run)
    assert searcher.calibration is None
    result = searcher.search(NOISE, k=5)
    assert result.confidence is None and result.match is None and result.tracks
    from dynplayer.text.confidence import write_calibration

    write_calibration(run)  # what `train-text --calibrate-only` runs
    assert TextSearcher.load(run).search(NOISE, k=5).match == "nothing"


@pytest.mark.db
def test_api_and_python_api_answer_with_the_verdict(serve_run_dir: Path,
                                                    text_searcher: TextSearcher) -> None:
    from fastapi.testclient import TestClient

    from dynplayer.api import Dynplayer
    from dynplayer.serve.app import create_app
    from dynplayer.serve.schemas import TextResponse
    from dynplayer.settings import Settings

    app = create_app(Settings(run_dir=serve_run_dir, backend="exact", database_url=None),
                     searcher_factory=lambda _run: text_searcher)
    with TestClient(app) as client:
        r = client.post("/v1/recommend/text", json={"text": NOISE, "k": 5})
        assert r.status_code == 200
        TextResponse.model_validate_json(r.content, strict=True)
        body = r.json()
        assert body["match"] == "nothing" and 0.0 <= body["confidence"] <= 1.0
        caption = common_captions(text_searcher, 1)[0]
        r = client.post("/v1/recommend/text", json={"text": caption, "k": 5})
        assert r.json()["match"] == "close" and r.json()["confidence"] >= body["confidence"]
    model = Dynplayer.load(serve_run_dir)
    assert model.search(NOISE, k=3).match == "nothing"
    assert model.search(caption, k=3).match == "close"


def test_the_cli_says_nothing_close(serve_run_dir: Path, tmp_path: Path, copy_run,  # type: ignore[no-untyped-def]
                                    cli) -> None:
    code, out, _ = cli("search", str(serve_run_dir), NOISE, "-k", "3")
    assert code == 0 and "nothing close: no caption of this model is near this query" in out
    assert out.index("nothing close") < out.index("tracks (top 3)")
    caption = common_captions(TextSearcher.load(serve_run_dir), 1)[0]
    code, out, _ = cli("search", str(serve_run_dir), caption, "-k", "3")
    assert code == 0 and "nothing close" not in out and "weak match" not in out
    queries = tmp_path / "q.txt"
    queries.write_text(f"{NOISE}\n{caption}\n", encoding="utf-8")
    code, out, _ = cli("search", str(serve_run_dir), "--queries", str(queries), "--jsonl")
    lines = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and [x["match"] for x in lines] == ["nothing", "close"]
    probe = tmp_path / "probe.jsonl"
    probe.write_text(json.dumps({"query": NOISE, "kind": "keyboard"}) + "\n", encoding="utf-8")
    code, out, _ = cli("bench", "confidence", str(serve_run_dir), "--probe", str(probe),
                       "--json")
    report = json.loads(out)
    assert code == 0 and report["probe"]["nothing"] == 1.0
    assert report["probe"]["by_kind"]["keyboard"]["queries"] == 1
    assert report["val"]["queries"] > 0 and report["noise"]["nothing"] >= 0.6
    code, _, err = cli("bench", "confidence", str(serve_run_dir), "--probe",
                       str(tmp_path / "missing.jsonl"))
    assert code == 2 and "missing.jsonl" in err and len(err.strip().splitlines()) == 1
    run = copy_run(serve_run_dir, tmp_path / "run")
    code, out, _ = cli("train-text", str(run), "--calibrate-only")
    assert code == 0 and "confidence.json" in out and "nothing close" in out
    code, _, err = cli("train-text", str(tmp_path), "--calibrate-only")
    assert code == 2 and "no text model" in err
