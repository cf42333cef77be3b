"""The page's "My library" mode in real headless Chromium: it appears when the served run has a
library, and answers free text and an instant mix from that library with their "because"."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dynplayer.data.corpus import load_corpus
from dynplayer.library.importer import import_library
from dynplayer.serve.app import create_app
from dynplayer.settings import Settings

pytestmark = [pytest.mark.browser]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def page_url(tmp_path_factory: pytest.TempPathFactory, serve_run_dir: Path, copy_run: Any,
             synthetic_corpus_dir: Path, text_searcher: Any, live_server: Any
             ) -> Iterator[tuple[str, Any]]:
    run_dir = copy_run(serve_run_dir, tmp_path_factory.mktemp("libpage") / "run")
    corpus = load_corpus(synthetic_corpus_dir)
    src = run_dir.parent / "lib.csv"
    with src.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "artist", "title"])
        for t in range(1, 400, 2):
            w.writerow([f"lib{t}", corpus.artists[t], corpus.track_names[t]])
    import_library(run_dir, str(src), name="home")
    app = create_app(Settings(run_dir=run_dir, backend="exact", database_url=None),
                     searcher_factory=lambda _run: text_searcher)
    with live_server(app) as url:
        yield url, corpus


def test_library_mode_text_and_mix(page_url: tuple[str, Any]) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (scripts/setup installs it)")
    from playwright.sync_api import sync_playwright

    url, corpus = page_url
    owned = {corpus.track_names[t] for t in range(1, 400, 2)}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.set_default_timeout(20000)
        page.goto(f"{url}/ui/")
        page.wait_for_selector("#mode-library:not([hidden])")
        page.click("#mode-library")
        assert "200 tracks" in page.locator("#library-info").inner_text()
        page.fill("#library-text", "rock")
        page.click("#library-form button[type=submit]")
        page.wait_for_function("document.querySelectorAll('#results > li.library-track')"
                               ".length > 0")
        names = page.locator("#results > li .name").all_inner_texts()
        assert names and set(names) <= owned
        # planted: the odd tracks hold no jazz, so rock
        assert sum("(rock," in n for n in names) >= 0.7 * len(names)
        assert page.locator("#results .because").first.inner_text().strip()
        page.fill("#library-seed", corpus.track_names[11])
        page.click("#library-mix-form button[type=submit]")
        page.wait_for_function("document.querySelector('#results-title').textContent"
                               ".startsWith('Instant mix')")
        mixed = page.locator("#results > li .name").all_inner_texts()
        assert len(mixed) == 20 and set(mixed) <= owned and corpus.track_names[11] not in mixed
        browser.close()
