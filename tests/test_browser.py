"""The web page in real headless Chromium (Debian's /usr/bin/chromium driven by Playwright):
free-text search (English and Korean, rendered with CJK fonts), "more like this", continuation
with autocomplete, and the page hosted elsewhere calling the API across origins."""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dynplayer.serve.app import STATIC_DIR, create_app
from dynplayer.settings import Settings

pytestmark = [pytest.mark.browser, pytest.mark.db]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOT = Path("/tmp/dynplayer-browser-korean.png")


@pytest.fixture(scope="module")
def static_host() -> Iterator[str]:
    """The page's files served by a plain static file server on another origin."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(STATIC_DIR))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def api_url(indexed_url: str, serve_run_dir: Path, text_searcher: object, static_host: str,
            live_server: Any) -> Iterator[str]:
    settings = Settings(database_url=indexed_url, run_dir=serve_run_dir, backend="pgvector",
                        auto_index=False, cors_origins=[static_host])
    app = create_app(settings, searcher_factory=lambda _run: text_searcher)  # type: ignore[arg-type,return-value]
    with live_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (scripts/setup installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1000, "height": 900}, locale="ko-KR")
    pg = context.new_page()
    pg.set_default_timeout(15000)
    yield pg
    context.close()


def search(page: Any, text: str) -> list[str]:
    page.fill("#text-input", text)
    page.click("#text-form button[type=submit]")
    page.wait_for_function("document.querySelectorAll('#results > li .track').length > 0")
    return [str(n) for n in page.locator("#results > li .name").all_inner_texts()]


def test_text_search_shows_tracks_artists_and_because(page: Any, api_url: str) -> None:
    page.goto(api_url + "/")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('model')")
    names = search(page, "jazz bebop")
    assert len(names) == 20 and sum("jazz" in n for n in names) >= 15
    first = page.locator("#results > li").first
    assert first.locator(".artist").inner_text().startswith("Artist ")
    assert first.locator(".because span").count() >= 1
    assert "jazz" in first.locator(".because").inner_text()


def test_a_bridged_loanword_is_shown_as_searched(page: Any, api_url: str) -> None:
    page.goto(api_url + "/")
    names = search(page, "메탈")
    assert sum("metal" in n for n in names) >= 15
    assert page.locator("#results-title").inner_text() == 'Tracks for “메탈” (searched as “metal”)'
    page.fill("#text-input", "jazz bebop")  # an English query: the title says nothing more
    page.click("#text-form button[type=submit]")
    page.wait_for_function(
        "document.getElementById('results-title').textContent === 'Tracks for “jazz bebop”'")


def test_korean_query_renders_with_cjk_fonts(page: Any, api_url: str) -> None:
    if shutil.which("fc-list") is None or "Noto Sans CJK" not in subprocess.run(
            ["fc-list"], capture_output=True, text=True).stdout:
        pytest.skip("fonts-noto-cjk not installed (scripts/setup installs it)")
    page.goto(api_url + "/")
    names = search(page, "케이팝 아이돌")
    assert sum("k-pop" in n for n in names) >= 15
    title = page.locator("#results-title").inner_text()
    assert "케이팝 아이돌" in title
    because = page.locator("#results .because").all_inner_texts()
    assert any("케이팝" in b or "아이돌" in b for b in because)
    # The Korean glyphs have real width (not zero-width or missing) in the page's font stack.
    width = page.evaluate("""() => { const c = document.createElement('canvas').getContext('2d');
        c.font = '20px ' + getComputedStyle(document.body).fontFamily;
        return c.measureText('케이팝').width; }""")
    assert width > 40
    page.screenshot(path=str(SCREENSHOT), full_page=False)
    assert SCREENSHOT.stat().st_size > 10_000


def test_more_like_this(page: Any, api_url: str) -> None:
    page.goto(api_url + "/")
    search(page, "metal heavy")
    first = page.locator("#results > li").first
    track_id = first.get_attribute("data-track-id")
    first.locator("button.more").click()
    page.wait_for_function("document.getElementById('results-title').textContent"
                           ".startsWith('More like')")
    ids = page.locator("#results > li").evaluate_all(
        "items => items.map(i => i.dataset.trackId)")
    assert len(ids) == 20 and track_id not in ids


def test_continuation_with_autocomplete(page: Any, api_url: str) -> None:
    page.goto(api_url + "/")
    page.click("#mode-continue")
    picked = []
    for typed in ("Artist 1", "Track 2"):
        page.fill("#track-input", typed)
        option = page.locator("#suggestions li").first
        option.wait_for()
        picked.append(option.get_attribute("data-track-id"))
        assert typed.lower() in option.inner_text().lower()
        option.click()
    assert page.locator("#seeds li").count() == 2
    page.click("#continue-button")
    page.wait_for_function("document.getElementById('results-title').textContent"
                           ".startsWith('Next for your 2 tracks')")
    ids = page.locator("#results > li").evaluate_all(
        "items => items.map(i => i.dataset.trackId)")
    assert len(ids) == 20 and not set(ids) & set(picked)


def test_because_names_a_caption_once_and_autocomplete_says_near_misses(
        page: Any, api_url: str) -> None:
    """The "because" line repeated identical captions ("summer summer summer summer"), and
    an unknown song's near misses looked like matches."""
    page.goto(api_url + "/")
    search(page, "smooth jazz")
    spans = page.locator("#results .because").evaluate_all(
        "ps => ps.map(p => [...p.querySelectorAll('span')].map(s => s.textContent))")
    assert spans and all(len(texts) == len(set(texts)) for texts in spans), spans
    assert any("×" in text for texts in spans for text in texts)  # "jazz chill ×3"
    page.click("#mode-continue")
    for typed, said in (("Artsit 1", "no exact match for “Artsit 1”"),
                        ("qqqqzzzzxx", "no track matches “qqqqzzzzxx”")):
        page.fill("#track-input", typed)
        note = page.locator("#suggestions li.note")
        # the list answers each keystroke asynchronously: wait for this query's note, not
        # the previous one still on screen
        page.wait_for_function(
            "said => [...document.querySelectorAll('#suggestions li.note')]"
            ".some(n => n.textContent.startsWith(said))", arg=said, timeout=10_000)
        assert note.inner_text().startswith(said)
    page.fill("#track-input", "Artist 1")
    page.locator("#suggestions li[data-track-id]").first.wait_for()
    assert page.locator("#suggestions li.note").count() == 0


def test_page_hosted_elsewhere_calls_the_api(page: Any, api_url: str, static_host: str) -> None:
    page.goto(f"{static_host}/index.html?api={api_url}")
    assert page.locator("#api-base").inner_text() == api_url
    names = search(page, "reggae country")
    assert len(names) == 20
    assert not page.locator("#error").is_visible()
