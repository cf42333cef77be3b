"""The library round trip against a real Subsonic server (Supysonic, started here on a free local
port, never a mock): import -> match -> mix -> playlist created -> read back through the
server's own REST API; wrong credentials, the dry run, and playlists Dynplayer did not make."""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dynplayer.data.corpus import save_corpus
from dynplayer.library.simulate import perturb
from dynplayer.library.supysonic import SupysonicServer, supysonic_available, write_mp3
from library_fixtures import relabel_with_real_names

pytestmark = pytest.mark.subsonic
PASSWORD = "pw-Never-Shown-42"


def _require_supysonic() -> None:
    why = supysonic_available()
    if why is None:
        return
    if os.geteuid() == 0 or os.environ.get("CI"):
        pytest.fail(f"{why}; the library tests need a real Subsonic server")
    pytest.skip(f"{why} (not root: skipped on this developer machine)")


def rest(url: str, view: str, **params: str) -> dict[str, Any]:
    """The server's own REST API, asked directly (not through Dynplayer's client)."""
    q = urllib.parse.urlencode({"u": "listener", "p": PASSWORD, "c": "test", "v": "1.10.2",
                                "f": "json", **params}, doseq=True)
    with urllib.request.urlopen(f"{url}/rest/{view}.view?{q}", timeout=30) as res:
        body: dict[str, Any] = json.loads(res.read())["subsonic-response"]
    assert body["status"] == "ok", body
    return body


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory,
           make_svd_run_factory: Any) -> Iterator[tuple[str, Path, Any]]:
    """(server URL, run dir, corpus): a relabelled planted corpus (real MPD artists and titles
    when ../shared/data is there), a stand-in run on it, and Supysonic over 60 of its tracks
    tagged with perturbed tags plus two tracks the catalogue lacks."""
    _require_supysonic()
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import make_synthetic

    root = tmp_path_factory.mktemp("subsonic")
    corpus = make_synthetic()
    real = relabel_with_real_names(corpus)
    print(f"library test tags: {'real MPD names' if real else 'synthetic names (no data)'}")
    save_corpus(corpus, root / "corpus")
    run_dir = make_svd_run_factory(root / "corpus", root / "run", dim=16)
    rng = np.random.default_rng(0)
    music = root / "music"
    for t in range(0, 120, 2):
        a, title = perturb(corpus.artists[t], corpus.track_names[t], rng)
        write_mp3(music / f"{t:03d}.mp3", a, title, corpus.albums[t])
    write_mp3(music / "x1.mp3", corpus.artists[2], "A Song The Catalogue Lacks", None)
    write_mp3(music / "x2.mp3", "Zzyzx Qwerty Collective", "Nothing Known", None)
    server = SupysonicServer(root / "server", music, user="listener", password=PASSWORD)
    server.setup()
    with server:
        url = server.start()
        yield url, run_dir, corpus


def _env(monkeypatch: pytest.MonkeyPatch, password: str = PASSWORD) -> None:
    monkeypatch.setenv("DYNPLAYER_SUBSONIC_USER", "listener")
    monkeypatch.setenv("DYNPLAYER_SUBSONIC_PASSWORD", password)
    monkeypatch.delenv("DYNPLAYER_SUBSONIC_API_KEY", raising=False)


def _cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
         *args: str) -> tuple[int, str, str]:
    import sys

    from dynplayer import cli

    monkeypatch.setattr(sys, "argv", ["dynplayer", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_round_trip_import_mix_playlist_read_back(served: tuple[str, Path, Any],
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    url, run_dir, corpus = served
    songs = rest(url, "search3", query="", songCount="500", artistCount="0",
                 albumCount="0")["searchResult3"]["song"]
    by_path = {s["path"]: s["id"] for s in songs}
    rest(url, "createPlaylist", name="My favourites",
         songId=[by_path["000.mp3"], by_path["010.mp3"], by_path["020.mp3"]])
    rest(url, "createPlaylist", name="Dynplayer: Clash", songId=[by_path["002.mp3"]])
    mine_before = _playlist(url, "My favourites")
    _env(monkeypatch)
    code, out, err = _cli(capsys, monkeypatch, "library", "import", str(run_dir), url,
                          "--jsonl")
    assert code == 0, err
    lines = [json.loads(x) for x in out.splitlines()]
    assert len(lines) == 62
    matched = [x for x in lines if x["track_id"] is not None]
    assert len(matched) >= 0.9 * 60
    path_of = {v: k for k, v in by_path.items()}
    for x in matched:  # each matched to the catalogue track it was tagged from
        path = path_of[x["id"]]
        assert x["track_id"] == corpus.track_ids[int(path[:3])], (path, x)
    assert {x["how"] for x in lines if path_of[x["id"]] == "x1.mp3"} == {"artist"}
    assert {x["how"] for x in lines if path_of[x["id"]] == "x2.mp3"} == {"none"}
    # credentials never land in the run directory
    for f in (run_dir / "library").rglob("*"):
        if f.is_file():
            text = f.read_text(errors="replace")
            assert PASSWORD not in text and PASSWORD.encode().hex() not in text.lower()
    # a mix from the library, first as a dry run: nothing is written
    seed = by_path["010.mp3"]
    code, out, err = _cli(capsys, monkeypatch, "library", "mix", str(run_dir), seed, "-k",
                          "8", "--jsonl", "--save", "Friday", "--dry-run")
    assert code == 0, err
    mix = json.loads(out.strip().splitlines()[-1])
    assert len(mix["tracks"]) == 8 and set(mix["tracks"]) <= set(by_path.values())
    assert "would create playlist 'Dynplayer: Friday'" in err
    assert _playlist(url, "Dynplayer: Friday") is None
    # written: read back through the server's own API
    code, out, err = _cli(capsys, monkeypatch, "library", "mix", str(run_dir), seed, "-k",
                          "8", "--jsonl", "--save", "Friday")
    assert code == 0, err
    made = _playlist(url, "Dynplayer: Friday")
    assert made is not None and made["songs"] == mix["tracks"]
    assert made["comment"].startswith("Made by Dynplayer")
    # saved again from another answer: the same playlist is updated, no other one changes
    code, out, err = _cli(capsys, monkeypatch, "library", "continue", str(run_dir),
                          "My favourites", "-k", "5", "--jsonl", "--save", "Friday")
    assert code == 0, err
    again = _playlist(url, "Dynplayer: Friday")
    assert again is not None and again["id"] == made["id"]
    assert again["songs"] == json.loads(out.strip().splitlines()[-1])["tracks"]
    assert _playlist(url, "My favourites") == mine_before
    # a playlist of that name that Dynplayer did not make is left alone
    code, out, err = _cli(capsys, monkeypatch, "library", "mix", str(run_dir), seed,
                          "--save", "Clash")
    assert code == 2 and "Dynplayer did not make" in err
    assert _playlist(url, "Dynplayer: Clash")["songs"] == [by_path["002.mp3"]]


def _playlist(url: str, name: str) -> dict[str, Any] | None:
    heads = rest(url, "getPlaylists")["playlists"].get("playlist", [])
    found = [p for p in heads if p["name"] == name]
    if not found:
        return None
    body = rest(url, "getPlaylist", id=found[0]["id"])["playlist"]
    return {"id": body["id"], "comment": body.get("comment", ""),
            "songs": [e["id"] for e in body.get("entry", [])]}


def test_wrong_password_is_one_line_and_writes_nothing(served: tuple[str, Path, Any],
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    url, run_dir, _ = served
    _env(monkeypatch, password="Wrong-Secret-99")
    code, out, err = _cli(capsys, monkeypatch, "library", "import", str(run_dir), url,
                          "--name", "wrong")
    assert code == 2 and "wrong user name or password (Subsonic error 40)" in err
    assert "Wrong-Secret-99" not in out + err and "Traceback" not in err
    assert not (run_dir / "library" / "wrong").exists()
    code, out, err = _cli(capsys, monkeypatch, "library", "import", str(run_dir),
                          "http://user:pw@127.0.0.1:9/", "--name", "wrong")
    assert code == 2 and "must not hold credentials" in err


def test_api_key_and_old_versions_are_refused_clearly(served: tuple[str, Path, Any]) -> None:
    from dynplayer.errors import DynplayerError
    from dynplayer.library.subsonic import Credentials, SubsonicClient, _version

    url, _, _ = served
    # Supysonic 0.7.2 knows no API keys (an OpenSubsonic extension): a clear refusal
    with pytest.raises(DynplayerError) as err:
        SubsonicClient(url, Credentials(api_key="key-Never-Shown")).connect()
    assert "key-Never-Shown" not in str(err.value) and url.split("//")[1] in str(err.value)
    ok = SubsonicClient(url, Credentials("listener", PASSWORD)).connect()
    assert ok.api_version == "1.10.2" and ok.legacy  # Supysonic takes no tokens
    assert _version("1.7.0") < (1, 8, 0) <= _version(ok.api_version)
