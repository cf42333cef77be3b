"""Bad input through `dynplayer prepare`: one-line errors, --lenient counts, atomic replacement.

Most cases call the real entry point (`dynplayer.cli.main`) in-process, which is exactly what the
console script runs; one case runs the installed command in a subprocess end to end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dynplayer import cli
from dynplayer.data.corpus import load_corpus

FIX = Path(__file__).parent / "fixtures" / "data"


def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        *args: str) -> tuple[int, str, str]:
    """Run `dynplayer ARGS` through the console entry point; (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["dynplayer", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def jsonl(path: Path, *records: object) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                            for r in records))
    return path


def good(pid: str, tracks: list[str] | None = None) -> dict[str, object]:
    return {"pid": pid, "name": f"list {pid}", "tracks": tracks or ["t1", "t2", "t3"]}


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dynplayer: error: ")
    for n in needles:
        assert n in lines[0], (n, lines[0])


CASES = {
    "malformed JSON line": (
        [good("a"), '{"pid": "b", "name": "x", "tracks": ["t1",}', good("c")],
        [":2:", "malformed JSON"], "record: malformed JSON"),
    "playlist without tracks": (
        [good("a"), {"pid": "b", "name": "x", "tracks": []}, good("c")],
        [":2", "playlist b", "field 'tracks'", "no tracks"], "tracks: playlist has no tracks"),
    "missing tracks field": (
        [good("a"), good("b"), {"pid": "c", "name": "x"}],
        [":3", "playlist c", "field 'tracks'", "missing field"], "tracks: missing field"),
    "missing pid field": (
        [{"name": "x", "tracks": ["t1"]}, good("b"), good("c")],
        [":1", "field 'pid'", "missing field"], "pid: missing field"),
    "wrong field type": (
        [good("a"), {"pid": "b", "name": 5, "tracks": ["t1"]}, good("c")],
        [":2", "playlist b", "field 'name'", "expected a string"],
        "name: expected a string, got int"),
    "duplicate playlist id": (
        [good("a"), good("b"), good("a", ["t4"])],
        [":3", "playlist a", "field 'pid'", "duplicate playlist id", ":1)"],
        "pid: duplicate playlist id"),
    # json.loads raises ValueError (not JSONDecodeError) past 4,300 digits, RecursionError
    # when nested too deeply: both used to be tracebacks that --lenient could not skip.
    "integer too long": (
        [good("a"), '{"pid": "b", "name": "x", "tracks": [' + "9" * 5000 + "]}", good("c")],
        [":2:", "malformed JSON", "4,300 digits"], "record: malformed JSON"),
    "nested too deeply": (
        [good("a"), '{"pid": "b", "name": "x", "tracks": ' + "[" * 100_000 + "]" * 100_000
         + "}", good("c")],
        [":2:", "malformed JSON", "nested too deeply"], "record: malformed JSON"),
    # true == 1 to a dict: once track 1 is known, a JSON true used to be read as track "1".
    "JSON true in a track list": (
        [good("a", [1, 2, 3]), {"pid": "b", "name": "x", "tracks": [2, True]},  # type: ignore
         good("c", [1, 3])],
        [":2", "playlist b", "field 'tracks'", "track 1: expected a track id, got True"],
        "tracks: track N"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_jsonl_record(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    records, needles, reason = CASES[case]
    src = jsonl(tmp_path / "in.jsonl", *records)
    out = tmp_path / "corpus"
    code, _, err = run(capsys, monkeypatch, "prepare", str(src), "--out", str(out))
    assert_one_line_error(code, err, str(src), *needles)
    assert not out.exists()

    code, stdout, err = run(capsys, monkeypatch, "prepare", str(src), "--out", str(out),
                            "--lenient")
    assert code == 0, err
    assert stdout.rstrip().endswith("; skipped 1 bad record")  # singular, not "1 ... records"
    corpus = load_corpus(out)
    assert corpus.n_playlists == 2
    skipped = corpus.manifest["skipped"]
    assert skipped["total"] == 1 and len(skipped["examples"]) == 1
    assert skipped["by_reason"] == {reason: 1}


def test_bad_mpd_playlist_names_file_playlist_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = json.loads((FIX / "mpd_full" / "sample_full_fields.json").read_text())
    del data["playlists"][1]["name"]
    data["playlists"].append({"pid": 5, "name": "x", "tracks": [{"track_name": "no uri"}]})
    src = tmp_path / "mpd.slice.0-2.json"
    src.write_text(json.dumps(data))
    code, _, err = run(capsys, monkeypatch, "prepare", str(src), "--out", str(tmp_path / "c"))
    assert_one_line_error(code, err, str(src), "playlist 1", "field 'name'", "missing field")
    code, _, err = run(capsys, monkeypatch, "prepare", str(src), "--out", str(tmp_path / "c"),
                       "--lenient")
    assert code == 0
    sk = load_corpus(tmp_path / "c").manifest["skipped"]
    assert sk["by_reason"] == {"name: missing field": 1,
                               "tracks.track_uri: track N has no track_uri": 1}


def test_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                   monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n  \n")
    code, _, err = run(capsys, monkeypatch, "prepare", str(empty), "--out", str(tmp_path / "c"))
    assert_one_line_error(code, err, str(empty), "file is empty")

    corrupt = tmp_path / "mpd.slice.0-999.json.gz"
    corrupt.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00not gzip at all")
    code, _, err = run(capsys, monkeypatch, "prepare", str(corrupt), "--out", str(tmp_path / "c"))
    assert_one_line_error(code, err, str(corrupt), "cannot read file")

    missing = tmp_path / "nope.json"
    code, _, err = run(capsys, monkeypatch, "prepare", str(missing), "--out", str(tmp_path / "c"))
    assert_one_line_error(code, err, str(missing), "no such file")

    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(b'{"pid": "a", "name": "caf\xe9", "tracks": ["t1"]}\n')
    code, _, err = run(capsys, monkeypatch, "prepare", str(latin1), "--out", str(tmp_path / "c"))
    assert_one_line_error(code, err, str(latin1), "not UTF-8")

    csv = tmp_path / "playlists.csv"
    csv.write_text("pid,name,tracks\n1,x,t1\n")
    code, _, err = run(capsys, monkeypatch, "prepare", str(csv), "--out", str(tmp_path / "c"))
    assert_one_line_error(code, err, str(csv), "unknown format", "--format")

    code, _, err = run(capsys, monkeypatch, "prepare", str(FIX / "mpd_full"), "--out",
                       str(tmp_path / "c"), "--format", "melon")
    assert_one_line_error(code, err, "sample_full_fields.json", "not a Melon playlist file")

    code, _, err = run(capsys, monkeypatch, "prepare", str(FIX / "mpd_full"), "--out",
                       str(tmp_path / "c"), "--format", "xml")
    assert_one_line_error(code, err, "unknown format 'xml'")
    assert not (tmp_path / "c").exists()


def test_lenient_skips_whole_bad_files_and_counts_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "in"
    d.mkdir()
    jsonl(d / "a.jsonl", good("a"), good("b"))
    (d / "b.jsonl").write_text("")
    (d / "c.json").write_text("{not json")
    out = tmp_path / "c"
    code, _, err = run(capsys, monkeypatch, "prepare", str(d), "--out", str(out), "--lenient")
    assert code == 0, err
    corpus = load_corpus(out)
    assert corpus.pids == ["a", "b"]
    sk = corpus.manifest["skipped"]
    assert sk["total"] == 2 and sk["by_reason"]["record: file is empty"] == 1
    assert corpus.manifest["lenient"] is True
    assert corpus.manifest["source_files"] == [str(d / "a.jsonl")]

    # Everything bad: even lenient has nothing to build from.
    code, _, err = run(capsys, monkeypatch, "prepare", str(d / "b.jsonl"), "--out",
                       str(tmp_path / "c2"), "--lenient")
    assert_one_line_error(code, err, "no playlists were read")


def test_failed_prepare_keeps_the_good_corpus(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "corpus"
    code, _, err = run(capsys, monkeypatch, "prepare", str(FIX / "mpd_full"),
                       str(FIX / "mpd_reduced"), "--out", str(out))
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = jsonl(tmp_path / "bad.jsonl", good("a"), '{"pid": ')
    code, _, err = run(capsys, monkeypatch, "prepare", str(bad), "--out", str(out))
    assert_one_line_error(code, err, f"{bad}:2")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert load_corpus(out).n_playlists == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "corpus"]  # no debris

    # A good rerun replaces it completely.
    code, _, _ = run(capsys, monkeypatch, "prepare", str(FIX / "melon"), "--out", str(out))
    assert code == 0 and load_corpus(out).sources == ["melon"] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "corpus"]


def test_console_script_subprocess(tmp_path: Path) -> None:
    src = jsonl(tmp_path / "in.jsonl", good("a"), {"pid": "b", "name": "x", "tracks": []})
    exe = Path(sys.executable).with_name("dynplayer")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "dynplayer.cli"]
    res = subprocess.run([*cmd, "prepare", str(src), "--out", str(tmp_path / "c")],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COLUMNS": "200"})
    assert res.returncode == 2
    assert res.stderr == (f"dynplayer: error: {src}:2, playlist b, field 'tracks': playlist has "
                          "no tracks\n")


def test_prepare_refuses_to_replace_a_non_corpus_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    code, _, err = run(capsys, monkeypatch, "prepare", str(FIX / "melon"), "--out", str(precious))
    assert_one_line_error(code, err, str(precious), "not a corpus directory")
    assert (precious / "thesis.txt").read_text() == "do not delete"
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, monkeypatch, "prepare", str(FIX / "melon"), "--out", str(empty))
    assert code == 0, err


def test_bad_config_value_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run(capsys, monkeypatch, "prepare", str(FIX / "melon"), "--out",
                       str(tmp_path / "c"), "--set", "select_fraction=1.5", "--set", "window=0")
    assert_one_line_error(code, err, "select_fraction must be in (0, 1]", "window must be >= 1")
    code, _, err = run(capsys, monkeypatch, "prepare", str(FIX / "melon"), "--out",
                       str(tmp_path / "c"), "--set", "windw=3")
    assert_one_line_error(code, err, "unknown config key 'windw'")


def test_damaged_corpus_and_bad_genre_file_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "c"
    code, _, err = run(capsys, monkeypatch, "prepare", str(FIX / "melon"), "--out", str(out))
    assert code == 0, err
    (out / "tracks.parquet").write_bytes(b"garbage")
    code, _, err = run(capsys, monkeypatch, "stats", str(out))
    assert_one_line_error(code, err, str(out), "damaged corpus", "prepare")
    latin = tmp_path / "genres.csv"
    latin.write_bytes(b"genres,artists\nrock,Mot\xf6rhead\n")
    code, _, err = run(capsys, monkeypatch, "prepare", str(FIX / "mpd_full"), "--out",
                       str(tmp_path / "c2"), "--artist-genres", str(latin))
    assert_one_line_error(code, err, str(latin), "not UTF-8")


def test_bad_tracks_file_is_skipped_with_lenient(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    src = jsonl(tmp_path / "in.jsonl", good("a"), good("b"))
    bad = tmp_path / "tracks.jsonl"
    bad.write_text("")
    out = tmp_path / "corpus"
    code, _, err = run(capsys, monkeypatch, "prepare", str(src), "--out", str(out),
                       "--tracks", str(bad))
    assert_one_line_error(code, err, str(bad), "file is empty")
    code, stdout, err = run(capsys, monkeypatch, "prepare", str(src), "--out", str(out),
                            "--tracks", str(bad), "--lenient")
    assert code == 0, err
    assert stdout.rstrip().endswith("; skipped 1 bad record")
    corpus = load_corpus(out)
    assert corpus.n_playlists == 2 and str(bad) not in corpus.manifest["source_files"]


def test_html_entities_and_spotify_links_are_decoded_at_ingest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tid = "6rqhFgbbKwnb9MLmUQDhG6"
    src = jsonl(tmp_path / "in.jsonl",
                {"pid": "a", "name": "Rock &amp; Roll", "description": "it&#x27;s &lt;3",
                 "tags": ["r&amp;b"],
                 "tracks": [f"spotify:track:{tid}", "t2", f"https://open.spotify.com/track/{tid}"
                            "?si=abc123"]},
                {"pid": "b", "name": "b", "tracks": [tid, "t2"]})
    tracks = jsonl(tmp_path / "tracks.jsonl",
                   {"track_id": f"spotify:track:{tid}", "track_name": "Don&#x27;t Stop",
                    "artist": "Guns N&#39; Roses", "album": "A &amp; B"})
    out = tmp_path / "corpus"
    code, _, err = run(capsys, monkeypatch, "prepare", str(src), "--out", str(out),
                       "--tracks", str(tracks))
    assert code == 0, err
    c = load_corpus(out)
    assert sorted(c.track_ids) == sorted([tid, "t2"])  # the three spellings are one track
    i = c.track_ids.index(tid)
    assert (c.track_names[i], c.artists[i], c.albums[i]) == ("Don't Stop", "Guns N' Roses",
                                                             "A & B")
    p = c.pids.index("a")
    assert (c.names[p], c.descriptions[p], c.tags[p]) == ("Rock & Roll", "it's <3", ["r&b"])


def test_mpd_entities_are_decoded(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    slice_ = {"info": {}, "playlists": [{
        "pid": 1, "name": "Throwback &amp; chill", "description": "90&#x27;s",
        "tracks": [{"track_uri": "spotify:track:abc", "track_name": "Me &amp; You",
                    "artist_name": "A"}, {"track_uri": "spotify:track:def",
                                          "track_name": "x", "artist_name": "B"}]}]}
    src = tmp_path / "mpd.slice.0-0.json"
    src.write_text(json.dumps(slice_))
    out = tmp_path / "corpus"
    code, _, err = run(capsys, monkeypatch, "prepare", str(src), "--out", str(out))
    assert code == 0, err
    c = load_corpus(out)
    assert (c.names[0], c.descriptions[0]) == ("Throwback & chill", "90's")
    assert c.track_names[c.track_ids.index("abc")] == "Me & You"


@pytest.mark.parametrize("args, needles", [
    (["--tracks", "0"], ["--tracks must be >= 32"]),
    (["--tracks", "10"], ["--tracks must be >= 32", "got 10"]),
    (["--mean-length", "-1"], ["--mean-length must be in (0, 10000]"]),
    (["--mean-length", "nan"], ["--mean-length"]),
    (["--playlists", "0"], ["--playlists must be >= 1"]),
])
def test_synth_arguments_are_checked(args: list[str], needles: list[str], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "c"
    code, _, err = run(capsys, monkeypatch, "synth", "--out", str(out), *args)
    assert_one_line_error(code, err, *needles)
    assert not out.exists()


def test_synth_smallest_sizes_work(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run(capsys, monkeypatch, "synth", "--out", str(tmp_path / "c"),
                       "--tracks", "32", "--playlists", "20", "--mean-length", "0.5")
    assert code == 0, err
    assert load_corpus(tmp_path / "c").n_playlists == 20


@pytest.mark.parametrize("args, needles", [
    (["bench", "uniformity", "CORPUS", "--values", "x", "--doc", "TMP/b.md"],
     ["--values", "'x'"]),
    (["bench", "uniformity", "CORPUS", "--values", ",", "--doc", "TMP/b.md"], ["--values"]),
    (["bench", "serve", "RUN", "--queries", "1"], ["--queries must be from 2"]),
    (["bench", "text", "RUN", "--out", "FILE/sub/table.md"], ["FILE/sub/table.md",
                                                               "cannot create"]),
    (["bench", "text", "RUN", "--out", "TMP"], ["is a directory"]),
])
def test_bench_arguments_are_checked_before_the_run(
    args: list[str], needles: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each is refused at once (the RUN and CORPUS given do not even exist): `bench text --out`
    to an unwritable path used to raise only after the whole benchmark."""
    (tmp_path / "file").write_text("a file, not a directory")  # (root may write anywhere else)
    subst = {"CORPUS": str(tmp_path / "no-corpus"), "RUN": str(tmp_path / "no-run"),
             "TMP": str(tmp_path), "FILE": str(tmp_path / "file")}

    def fill(text: str) -> str:
        for key, value in subst.items():
            text = text.replace(key, value)
        return text

    code, _, err = run(capsys, monkeypatch, *map(fill, args))
    assert_one_line_error(code, err, *map(fill, needles))


@pytest.mark.parametrize("command, table", [("prepare", "data"), ("train-text", "text")])
def test_config_section_that_is_not_a_table(
    command: str, table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"{table} = 5\n")
    args = ([str(FIX / "melon"), "--out", str(tmp_path / "c")] if command == "prepare"
            else [str(tmp_path)])
    code, _, err = run(capsys, monkeypatch, command, *args, "--config", str(cfg))
    assert_one_line_error(code, err, str(cfg), f"'{table}' must be a table", "got int 5")
