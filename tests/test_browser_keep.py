"""Keeping what was found on the web page, in real headless Chromium: the URL reproduces a
search (back and forward step through them), a playlist built on the page is saved in the
browser and exported (the API's bytes), a query the model cannot answer says "nothing close",
the variety setting caps tracks per artist, and a preview that cannot load says why."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from test_browser_page import (  # noqa: F401 (module fixtures, shared setup)
    _open,
    _page,
    _search,
    browser,
    rich_run,
    two_catalogs,
)

pytestmark = [pytest.mark.browser, pytest.mark.db]


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:  # noqa: F811
    pg = _page(browser, 1000)
    yield pg
    pg.context.close()


def _query(page: Any) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query)


def _title(page: Any) -> str:
    return str(page.locator("#results-title").inner_text())


def _wait_title(page: Any, start: str) -> None:
    page.wait_for_function(
        "s => document.getElementById('results-title').textContent.startsWith(s)", arg=start)


def test_the_url_reproduces_a_search_and_back_forward_step(page: Any, two_catalogs: str) -> None:  # noqa: F811
    _open(page, two_catalogs)
    _search(page, "metal heavy")
    assert _query(page)["q"] == ["metal heavy"]
    _search(page, "jazz bebop")
    _wait_title(page, "Tracks for “jazz bebop”")
    assert _query(page)["q"] == ["jazz bebop"]
    page.go_back()
    _wait_title(page, "Tracks for “metal heavy”")
    assert page.locator("#text-input").input_value() == "metal heavy"
    page.go_forward()
    _wait_title(page, "Tracks for “jazz bebop”")
    first = page.locator("#results > li").first
    name = first.locator(".name").inner_text()
    track_id = first.get_attribute("data-track-id")
    first.locator("button.more").click()
    _wait_title(page, "More like")
    assert _query(page)["similar"] == [track_id]
    # a fresh page from each URL shows the same search
    other = _page(page.context.browser, 1000)
    other.goto(f"{two_catalogs}/ui/?q=jazz%20bebop")
    _wait_title(other, "Tracks for “jazz bebop”")
    assert other.locator("#results > li").count() == 20
    other.goto(f"{two_catalogs}/ui/?similar={track_id}")
    _wait_title(other, f"More like {name}")
    ids = other.locator("#results > li").evaluate_all("xs => xs.map(x => x.dataset.trackId)")
    assert len(ids) == 20 and track_id not in ids
    seeds = ids[:2]
    other.goto(f"{two_catalogs}/ui/?seeds={','.join(seeds)}")
    _wait_title(other, "Next for your 2 tracks")
    assert other.locator("#continue-panel").is_visible()
    chips = other.locator("#seeds li").evaluate_all("xs => xs.map(x => x.dataset.trackId)")
    assert chips == seeds and "—" in other.locator("#seeds li").first.inner_text()
    other.context.close()


def test_nothing_close_is_said_not_ranked(page: Any, two_catalogs: str) -> None:  # noqa: F811
    _open(page, two_catalogs)  # the planted run's real text model, calibrated
    page.fill("#text-input", "asdkjh qwpoe zzxv")
    page.click("#text-form button[type=submit]")
    page.locator("#verdict").wait_for()
    assert page.locator("#verdict").inner_text().startswith("Nothing close to “asdkjh")
    assert not page.locator("#results").is_visible()
    page.click("#show-anyway")
    assert page.locator("#results > li").count() == 20
    _search(page, "chill jazz jazz chill")  # a caption of the planted corpus, word for word
    _wait_title(page, "Tracks for “chill jazz")
    assert not page.locator("#verdict").is_visible()
    assert page.locator("#results > li").count() == 20


def test_variety_caps_tracks_per_artist(page: Any, two_catalogs: str) -> None:  # noqa: F811
    _open(page, two_catalogs)
    page.select_option("#variety", "1")
    _search(page, "metal heavy")
    artists = page.locator("#results .artist").all_inner_texts()
    assert len(artists) == 20 and len(set(artists)) == 20
    assert _query(page)["artist"] == ["1"]
    page.goto(f"{two_catalogs}/ui/?q=metal%20heavy&artist=1")
    _wait_title(page, "Tracks for “metal heavy”")
    assert page.locator("#variety").input_value() == "1"
    assert len(set(page.locator("#results .artist").all_inner_texts())) == 20


def test_a_playlist_is_saved_and_exported(page: Any, two_catalogs: str, tmp_path: Path) -> None:  # noqa: F811
    _open(page, two_catalogs, catalog="spotify")
    _search(page, "jazz bebop")
    items = page.locator("#results > li")
    ids = [items.nth(i).get_attribute("data-track-id") for i in range(3)]
    for i in range(3):
        items.nth(i).locator("button.pick").click()
    page.click("#mode-continue")
    assert page.locator("#seeds li").count() == 3
    page.fill("#playlist-name", "Late night")
    page.click("#save-playlist")
    assert "Late night (3 tracks, spotify)" in page.locator("#saved").inner_text()
    with page.expect_download() as info:
        page.click("button.export-as[data-format=csv]")
    download = info.value
    assert download.suggested_filename == "Late-night.csv"
    got = Path(download.path()).read_bytes()
    want = httpx.post(f"{two_catalogs}/v1/playlists/export?catalog=spotify",
                      json={"name": "Late night", "track_ids": ids, "format": "csv"}).content
    assert got == want
    rows = list(csv.DictReader(io.StringIO(got.decode())))
    assert [r["spotify_uri"] for r in rows] == [f"spotify:track:{t}" for t in ids]
    # saved in the browser: it survives a reload and opens again
    page.reload()
    page.wait_for_function("document.getElementById('status').textContent.startsWith('model')")
    page.click("#mode-continue")
    page.locator("#saved li button.open").first.click()
    chips = page.locator("#seeds li").evaluate_all("xs => xs.map(x => x.dataset.trackId)")
    assert chips == ids and page.locator("#playlist-name").input_value() == "Late night"


def test_a_preview_that_cannot_load_says_why(page: Any, two_catalogs: str) -> None:  # noqa: F811
    statuses = {"answer": 200}

    def spotify(route: Any) -> None:
        if "oembed" not in route.request.url:
            route.fulfill(status=200, body="<html>player</html>", content_type="text/html")
        elif statuses["answer"] == 0:
            route.abort("internetdisconnected")
        else:
            route.fulfill(status=statuses["answer"], body="{}",
                          headers={"Access-Control-Allow-Origin": "*"},
                          content_type="application/json")

    page.route("https://open.spotify.com/**", spotify)
    _open(page, two_catalogs, catalog="spotify")
    _search(page, "jazz bebop")
    first = page.locator("#results > li").first
    button = first.locator("button.preview")
    button.click()  # Spotify has it: the player, no note
    frame = first.locator("iframe.spotify-embed")
    frame.wait_for()
    page.wait_for_timeout(300)
    assert frame.is_visible() and first.locator(".preview-note").count() == 0
    button.click()
    statuses["answer"] = 404
    button.click()
    note = first.locator(".preview-note")
    note.wait_for()
    assert note.inner_text().startswith("No preview") and not frame.is_visible()
    button.click()
    assert first.locator(".preview-note").count() == 0  # closing removes the note too
    statuses["answer"] = 0  # Spotify unreachable
    button.click()
    note.wait_for()
    assert note.inner_text().startswith("Preview unavailable")
    button.click()
    page.context.set_offline(True)  # the browser knows it is offline: no request at all
    button.click()
    assert note.inner_text().startswith("Preview unavailable: you are offline")
    assert first.locator("iframe").count() == 0
    page.context.set_offline(False)


def test_tracks_without_a_spotify_id_say_no_preview(page: Any, two_catalogs: str) -> None:  # noqa: F811
    _open(page, two_catalogs)  # synthetic ids are not Spotify's
    _search(page, "jazz bebop")
    assert page.locator("#results .no-preview").count() == 20
    assert page.locator("#results button.preview").count() == 0
