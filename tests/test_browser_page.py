"""The web page's first screen, Spotify links and previews, emoji, long titles, the track map and
the catalog picker, in real headless Chromium against one API process serving two catalogs (the
planted synthetic run, and a run whose tracks carry Spotify ids, emoji and very long titles)."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import StandinSearcher, make_svd_run, make_synthetic
from dynplayer.data.corpus import save_corpus
from dynplayer.serve.app import create_app
from dynplayer.settings import Settings

pytestmark = [pytest.mark.browser, pytest.mark.db]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
LONG_WORD = "Pneumonoultramicroscopicsilicovolcanoconiosis" * 4
SHOTS = Path("/tmp/dynplayer-browser-page")


def spotify_like_id(i: int) -> str:
    digest = hashlib.sha256(f"track {i}".encode()).digest()
    return "".join(BASE62[b % 62] for b in digest[:22])


@pytest.fixture(scope="module")
def rich_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, StandinSearcher]:
    """The planted corpus dressed as Spotify data: 22-character ids, emoji in playlist titles,
    and every third track name far longer than a line (one without a single space). Its text
    search is the stand-in searcher: these tests are about the page, not the text model (the
    other catalog serves the real one)."""
    corpus = make_synthetic(seed=3)
    corpus.track_ids = [spotify_like_id(i) for i in range(corpus.n_tracks)]
    corpus.names = [f"{n} 🔥🎷" for n in corpus.names]
    corpus.track_names = [
        (f"{n} {LONG_WORD}" if i % 6 == 0 else
         f"{n} (extended club remix featuring absolutely everyone who was there that night)")
        if i % 3 == 0 else n for i, n in enumerate(corpus.track_names)]
    root = tmp_path_factory.mktemp("rich")
    save_corpus(corpus, root / "corpus")
    run = make_svd_run(root / "corpus", root / "spotify")
    from dynplayer.run import load_run

    return run, StandinSearcher(corpus, load_run(run).ids)


@pytest.fixture(scope="module")
def two_catalogs(new_database: Any, serve_run_dir: Path, text_searcher: Any,
                 rich_run: tuple[Path, StandinSearcher], live_server: Any) -> Iterator[str]:
    run, searcher = rich_run
    searchers = {serve_run_dir: text_searcher, run: searcher}
    # A database of their own (indexed by the service at startup): the session's stays as the
    # other tests expect it.
    settings = Settings(database_url=new_database("pages"), backend="pgvector", text_playlists=20,
                        catalogs={"synthetic": serve_run_dir, "spotify": run})
    app = create_app(settings, searcher_factory=lambda r: searchers[r])  # type: ignore[arg-type,return-value]
    with live_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (scripts/setup installs it)")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def _page(browser: Any, width: int, height: int = 900) -> Any:
    context = browser.new_context(viewport={"width": width, "height": height})
    pg = context.new_page()
    pg.set_default_timeout(15000)
    return pg


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    pg = _page(browser, 1000)
    yield pg
    pg.context.close()


def _image(png: bytes) -> np.ndarray:
    import matplotlib.image

    return np.asarray(matplotlib.image.imread(io.BytesIO(png), format="png"))[..., :3]


def _no_horizontal_overflow(page: Any) -> None:
    width = page.evaluate("window.innerWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    # Every result card ends inside the page, whatever its title.
    rights = page.locator("#results > li").evaluate_all(
        "items => items.map(i => i.getBoundingClientRect().right)")
    assert rights and max(rights) <= width


def _open(page: Any, url: str, catalog: str | None = None) -> None:
    page.goto(url + "/" + (f"?catalog={catalog}" if catalog else ""))
    page.wait_for_function("document.getElementById('status').textContent.startsWith('model')")


def _search(page: Any, text: str) -> None:
    page.fill("#text-input", text)
    page.click("#text-form button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#results > li .track').length > 0")


def test_first_screen_has_examples_and_says_what_it_does(page: Any, two_catalogs: str) -> None:
    _open(page, two_catalogs)
    assert page.locator("#welcome").is_visible()
    assert "playlists" in page.locator("#welcome p").first.inner_text()
    examples = page.locator("#examples button.example").all_inner_texts()
    assert len(examples) >= 4
    assert any(any("\uac00" <= ch <= "\ud7a3" for ch in e) for e in examples)  # Korean
    assert any(e.isascii() for e in examples)  # English
    page.screenshot(path=str(SHOTS / "first-screen.png"), full_page=True)
    first = page.locator("#examples button.example").first
    text = first.inner_text()
    first.click()
    page.wait_for_function("document.getElementById('results-title').textContent.length > 0")
    assert text in page.locator("#results-title").inner_text()
    assert page.locator("#text-input").input_value() == text
    assert not page.locator("#welcome").is_visible()


def test_emoji_render_in_colour(page: Any, two_catalogs: str) -> None:
    if shutil.which("fc-list") is None or "Noto Color Emoji" not in subprocess.run(
            ["fc-list"], capture_output=True, text=True).stdout:
        pytest.skip("fonts-noto-color-emoji not installed (scripts/setup installs it)")
    _open(page, two_catalogs)
    button = page.locator("#examples button.example", has_text="🔥")
    img = _image(button.screenshot())
    # The button is dark text on white with a grey border: only a colour emoji glyph puts
    # strongly saturated pixels into it (a missing glyph is a grey box).
    saturation = img.max(axis=2) - img.min(axis=2)
    assert (saturation > 0.4).sum() > 30


def test_spotify_links_preview_on_click_and_long_titles(browser: Any, two_catalogs: str) -> None:
    for width in (1000, 380):  # a laptop and a phone
        page = _page(browser, width)
        _open(page, two_catalogs, catalog="spotify")
        _search(page, "jazz bebop")
        items = page.locator("#results > li")
        assert items.count() == 20
        first = items.first
        track_id = first.get_attribute("data-track-id")
        link = first.locator("a.name")
        assert link.get_attribute("href") == f"https://open.spotify.com/track/{track_id}"
        assert link.get_attribute("target") == "_blank"
        assert "🔥" in first.locator(".because").inner_text()
        # No player is loaded before it is asked for (each is a request to Spotify).
        assert page.locator("iframe").count() == 0
        first.locator("button.preview").click()
        frame = first.locator("iframe.spotify-embed")
        assert frame.get_attribute("src") == f"https://open.spotify.com/embed/track/{track_id}"
        assert page.locator("iframe").count() == 1
        # Opening another closes the first; clicking again closes it.
        second = items.nth(1)
        second.locator("button.preview").click()
        assert page.locator("iframe").count() == 1 and second.locator("iframe").count() == 1
        second.locator("button.preview").click()
        assert page.locator("iframe").count() == 0
        # The titles far longer than a line wrap inside their cards.
        names = page.locator("#results .name").all_inner_texts()
        assert any(LONG_WORD in n for n in names)
        _no_horizontal_overflow(page)
        shot = page.screenshot(path=str(SHOTS / f"results-{width}.png"), full_page=True)
        assert _image(shot).shape[1] == width  # a full-page shot wider than the viewport = overflow
        page.context.close()


def test_switching_modes_clears_old_results(page: Any, two_catalogs: str) -> None:
    _open(page, two_catalogs)
    _search(page, "metal heavy")
    assert page.locator("#results > li").count() == 20
    page.click("#mode-continue")
    assert page.locator("#results > li").count() == 0
    assert not page.locator("#results-title").is_visible()
    page.click("#mode-text")
    assert page.locator("#results > li").count() == 0 and page.locator("#welcome").is_visible()


def test_track_map_hover_and_click(page: Any, two_catalogs: str) -> None:
    import httpx

    points = httpx.get(f"{two_catalogs}/v1/map?limit=3000").json()["points"]
    _open(page, two_catalogs)
    page.click("#mode-map")
    page.wait_for_function("document.querySelectorAll('#map-legend li').length >= 8")
    legend = page.locator("#map-legend").inner_text()
    assert "jazz" in legend and "k-pop" in legend
    box = page.locator("#map").bounding_box()
    # Where the page draws each point: the points' bounding box, one scale for both axes,
    # filling 90% of the canvas, centred (app.js mapXY).
    raw = np.array([[p["x"], p["y"]] for p in points])
    lo, hi = raw.min(axis=0), raw.max(axis=0)
    w, h = box["width"] - 2, box["height"] - 2  # inside the 1 px border
    scale = min(0.9 * w / (hi[0] - lo[0]), 0.9 * h / (hi[1] - lo[1]))
    centre = (lo + hi) / 2
    xy = np.stack([1 + w / 2 + (raw[:, 0] - centre[0]) * scale,
                   1 + h / 2 - (raw[:, 1] - centre[1]) * scale], axis=1)
    # A dot with no other dot within 10 px, so the one under the mouse is known.
    d = ((xy[:, None] - xy[None]) ** 2).sum(axis=2)
    np.fill_diagonal(d, np.inf)
    lonely = int(np.flatnonzero(d.min(axis=1) > 100)[0])
    target = points[lonely]
    x, y = box["x"] + xy[lonely, 0], box["y"] + xy[lonely, 1]
    page.mouse.move(x, y)
    tip = page.locator("#map-tip")
    tip.wait_for()
    assert target["name"] in tip.inner_text() and target["artist"] in tip.inner_text()
    shot = page.screenshot(path=str(SHOTS / "map.png"))
    img = _image(shot)
    assert ((img.max(axis=2) - img.min(axis=2)) > 0.3).sum() > 2000  # coloured dots drawn
    page.mouse.click(x, y)
    page.wait_for_function("document.getElementById('results-title').textContent"
                           ".startsWith('More like')")
    ids = page.locator("#results > li").evaluate_all("items => items.map(i => i.dataset.trackId)")
    assert len(ids) == 20 and target["track_id"] not in ids


def test_catalog_picker_switches_catalog(page: Any, two_catalogs: str) -> None:
    _open(page, two_catalogs)
    picker = page.locator("#catalog")
    assert page.locator("#catalog-picker").is_visible()
    assert picker.locator("option").all_inner_texts()[0].startswith("synthetic")
    _search(page, "jazz bebop")
    assert page.locator("#results a.name").count() == 0  # synthetic ids are not Spotify's
    picker.select_option("spotify")
    assert page.locator("#results > li").count() == 0  # the old catalog's results are gone
    _search(page, "jazz bebop")
    assert page.locator("#results a.name").count() == 20
    ids = page.locator("#results > li").evaluate_all("items => items.map(i => i.dataset.trackId)")
    assert all(len(i) == 22 for i in ids)


def test_no_picker_with_one_catalog(browser: Any, indexed_url: str, serve_run_dir: Path,
                                    text_searcher: Any, live_server: Any) -> None:
    settings = Settings(database_url=indexed_url, run_dir=serve_run_dir, backend="pgvector",
                        auto_index=False, text_playlists=20)
    app = create_app(settings, searcher_factory=lambda _r: text_searcher)
    with live_server(app) as url:
        page = _page(browser, 1000)
        _open(page, url)
        assert not page.locator("#catalog-picker").is_visible()
        _search(page, "jazz bebop")
        assert page.locator("#results > li").count() == 20
        page.context.close()
