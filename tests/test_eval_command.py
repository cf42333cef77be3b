"""`dynplayer evaluate` end to end on the synthetic corpus with the trained track model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from dynplayer.cli import app
from dynplayer.data.corpus import TRAIN, load_corpus
from dynplayer.errors import ArtifactError, ConfigError, DataError
from dynplayer.eval.bench import replace_block
from dynplayer.eval.peers import GRIDS
from dynplayer.run import atomic_write_json, save_vectors


def svd_run(corpus_dir: Path, out: Path, dim: int = 16) -> Path:
    """Track vectors from a truncated SVD of the training matrix: a stand-in model, for
    `test_eval_realdata` (about the peers on real data, not the track model)."""
    c = load_corpus(corpus_dir)
    x = c.interaction_matrix(c.playlists_in(TRAIN)).toarray()
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    save_vectors(out, (vt[:dim].T * np.sqrt(s[:dim])).astype(np.float32),
                 [c.track_ids[t] for t in c.vocab()])
    atomic_write_json(out / "config.json", {"corpus_dir": str(corpus_dir.resolve()),
                                            "train": {"objective": "svd", "dim": dim}})
    return out


@pytest.fixture(scope="module")
def run_dir(track_run_dir: Path, copy_run: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's trained track model (evaluate writes RUN_DIR/eval/ into it)."""
    return copy_run(track_run_dir, tmp_path_factory.mktemp("run") / "trained")


def test_evaluate_json_report_and_verdict(run_dir: Path) -> None:
    res = CliRunner().invoke(app, ["evaluate", str(run_dir), "--peers", "popularity,ease",
                                   "--json", "--threads", "1", "--protocol", "seed"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)  # stdout holds the JSON and nothing else
    assert "field" not in out
    m = out["methods"]
    assert set(m) == {"dynplayer", "popularity", "ease"}
    for name in m:
        assert 0.0 <= m[name]["recall@10"] <= 1.0 and "ndcg@50" in m[name]
    # planted genres: both learned models are far above popularity
    assert m["dynplayer"]["recall@10"] > 2 * m["popularity"]["recall@10"]
    assert m["ease"]["recall@10"] > 2 * m["popularity"]["recall@10"]
    assert out["peers"]["ease"]["params"]["lam"] in [p["lam"] for p in GRIDS["ease"]]
    assert len(out["peers"]["ease"]["validation"]) == len(GRIDS["ease"])
    v = out["verdict"]
    beats = m["dynplayer"]["recall@10"] > max(m["popularity"]["recall@10"],
                                              m["ease"]["recall@10"])
    assert v["beats_best_peer_recall@10"] == beats
    assert ("does NOT beat" in v["text"]) != v["beats_best_peer"]
    # the probe has the synthetic genre labels; random vectors stay far below the model
    assert out["probe"]["dynplayer"]["top1"] > out["probe"]["random"]["top1"] + 0.3
    assert out["hubness"]["dynplayer"]["k"] == 10
    saved = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert saved["methods"]["ease"] == pytest.approx(m["ease"])
    html = (run_dir / "eval" / "report.html").read_text()
    assert "data:image/png;base64," in html and "Verdict" in html
    assert (run_dir / "eval" / "plots" / "headline_metrics.png").stat().st_size > 5_000
    assert saved["chart"] == "plots/headline_metrics.png"
    md = (run_dir / "eval" / "report.md").read_text()
    assert "| ease (lam=" in md and "plots/hubness_k_occurrence.png" in md
    assert not list(run_dir.glob(".eval.*"))  # no temporary directories left behind


def test_evaluate_split_file_with_unknown_tracks(run_dir: Path, tmp_path: Path) -> None:
    ids = (run_dir / "ids.txt").read_text().split()
    f = tmp_path / "split.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in [
        {"pid": "a", "visible": ids[:5] + ["unknown1"], "heldout": ids[5:10]},
        {"pid": "b", "visible": ["unknown2"], "heldout": ids[10:12]},
    ]) + "\n")
    res = CliRunner().invoke(app, ["evaluate", str(run_dir), "--peers", "none", "--json",
                                   "--test-split", str(f), "--no-probe", "--no-hubness",
                                   "--protocol", "seed"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["split"]["n_playlists"] == 1
    assert out["split"]["dropped_unknown"] == {"visible": 2, "heldout": 0, "playlists": 1}
    assert out["methods"]["dynplayer"]["n_playlists"] == 1
    assert "no comparison" in out["verdict"]["text"]


def test_a_validation_report_can_go_beside_the_test_report(run_dir: Path,
                                                           tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["evaluate", str(run_dir), "--peers", "none", "--threads",
                                   "1", "--protocol", "seed", "--no-probe", "--no-hubness"])
    assert res.exit_code == 0, res.output
    test_report = (run_dir / "eval" / "metrics.json").read_text()
    out = tmp_path / "val-report"
    for _ in range(2):  # a second run replaces the first report at --out
        res = CliRunner().invoke(app, ["evaluate", str(run_dir), "--peers", "none", "--split",
                                       "val", "--threads", "1", "--protocol", "seed",
                                       "--no-probe", "--no-hubness", "--out", str(out)])
        assert res.exit_code == 0, res.output
        assert f"wrote {out} " in res.stdout
    assert json.loads((out / "metrics.json").read_text())["split"] != \
        json.loads(test_report)["split"]
    assert (run_dir / "eval" / "metrics.json").read_text() == test_report  # untouched
    # a directory that is not a report is never replaced
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    r = CliRunner().invoke(app, ["evaluate", str(run_dir), "--peers", "none", "--out",
                                 str(other)])
    assert isinstance(r.exception, ConfigError)
    assert "is not an evaluation report" in str(r.exception)
    assert (other / "notes.txt").read_text() == "keep"
    # nor a run directory, though it holds a metrics.json of its own
    r = CliRunner().invoke(app, ["evaluate", str(run_dir), "--peers", "none", "--out",
                                 str(run_dir)])
    assert isinstance(r.exception, ConfigError)
    assert (run_dir / "config.json").exists() and (run_dir / "eval").is_dir()


def test_bad_input_is_one_clean_line(run_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"pid": 1, "visible": ["x"]}\n')
    r = CliRunner().invoke(app, ["evaluate", str(run_dir), "--peers", "none",
                                 "--test-split", str(bad)])
    assert isinstance(r.exception, DataError)
    assert "bad.jsonl:1, field 'heldout': missing" in str(r.exception)
    r = CliRunner().invoke(app, ["evaluate", str(run_dir), "--peers", "ease,nope"])
    assert isinstance(r.exception, ConfigError)
    r = CliRunner().invoke(app, ["evaluate", str(tmp_path / "absent")])
    assert isinstance(r.exception, ArtifactError)
    # through the real entry point: exit status 2 and one line on stderr, no traceback
    p = subprocess.run([sys.executable, "-c", "from dynplayer.cli import main; main()",
                        "evaluate", str(run_dir), "--peers", "none", "--split", "train"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "--split must be val or test" in p.stderr


def test_replace_block_touches_only_its_block(tmp_path: Path) -> None:
    doc = tmp_path / "b.md"
    doc.write_text("# B\n\n## Evaluation (issue 4)\n\nintro\n\n## Text search (issue 5)\n\nx\n")
    replace_block(doc, "evaluate", "table one")
    replace_block(doc, "evaluate", "table two")
    replace_block(doc, "uniformity", "sweep")
    text = doc.read_text()
    assert text.count("table") == 1 and "table two" in text
    assert text.index("intro") < text.index("table two") < text.index("sweep") < text.index(
        "## Text search")
    assert text.endswith("## Text search (issue 5)\n\nx\n")


def test_verdict_says_plainly_which_metric_is_beaten() -> None:
    from dynplayer.eval.report import verdict

    methods = {"dynplayer": {"recall@10": 0.30, "ndcg@10": 0.29},
               "ease": {"recall@10": 0.29, "ndcg@10": 0.30},
               "als": {"recall@10": 0.20, "ndcg@10": 0.31}}
    v = verdict(methods, "dynplayer")
    assert v["best_peer_recall@10"] == "ease" and v["beats_best_peer_recall@10"]
    assert v["best_peer_ndcg@10"] == "als" and not v["beats_best_peer_ndcg@10"]
    assert not v["beats_best_peer"]
    assert v["text"].startswith("Dynplayer does NOT beat the best peer at both")
    assert "recall@10: Dynplayer 0.3000 beats the best peer ease 0.2900 (+3.4%)" in v["text"]
    methods["dynplayer"]["ndcg@10"] = 0.32
    assert verdict(methods, "dynplayer")["text"].startswith("Dynplayer beats the best peer")


def test_evaluate_prints_its_verdict_once(run_dir: Path) -> None:
    """The verdict went to the log (stderr) and again to stdout: on a terminal, twice."""
    p = subprocess.run([sys.executable, "-m", "dynplayer.cli", "evaluate", str(run_dir),
                        "--peers", "popularity", "--no-probe", "--no-hubness",
                        "--field-peers", "popularity"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    both = p.stdout + p.stderr
    first_line = next(line for line in p.stdout.splitlines() if line.startswith("Dynplayer "))
    assert both.count(first_line) == 1, both


def test_html_report_renders_marks_and_aligns_columns(run_dir: Path) -> None:
    """The HTML report showed literal backticks, a `popularity | | -: nan` tuning row and every
    column right-aligned, text too."""
    import re

    p = subprocess.run([sys.executable, "-m", "dynplayer.cli", "evaluate", str(run_dir),
                        "--peers", "popularity,itemknn", "--no-probe", "--no-hubness",
                        "--field-peers", "popularity,title"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    page = (run_dir / "eval" / "report.html").read_text()
    text = re.sub(r"<[^>]+>", "", page)
    assert "`" not in text and "**" not in text and "nan" not in text.lower()
    assert f"<code>{run_dir}</code>" in page
    row = next(r for r in page.splitlines() if r.startswith("<tr><td") and ">popularity<" in r
               and "nothing to tune" in r)
    cells = re.findall(r'<td style="text-align:(\w+)">([^<]*)</td>', row)
    assert cells[:3] == [("left", "popularity"), ("left", "no parameters"),
                         ("left", "nothing to tune")], cells
    assert cells[3][0] == "right"  # seconds: a number
    md = (run_dir / "eval" / "report.md").read_text()
    assert "| popularity | no parameters | nothing to tune |" in md


def test_field_table_over_the_whole_catalogue(run_dir: Path) -> None:
    """`--protocol field`: the challenge's categories over every training track, Dynplayer
    beside the peers, each peer tuned on the validation cases, a verdict per category."""
    res = CliRunner().invoke(app, ["evaluate", str(run_dir), "--protocol", "field", "--json",
                                   "--threads", "1", "--field-peers",
                                   "popularity,title,itemknn,ease"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    f = out["field"]
    corpus = load_corpus(json.loads((run_dir / "config.json").read_text())["corpus_dir"])
    train = corpus.playlists_in(TRAIN)
    in_train = np.isin(corpus.occ_playlist, train)
    assert f["n_catalogue"] == len(set(corpus.occ_track[in_train].tolist()))
    assert set(f["methods"]) == {"dynplayer", "popularity", "title (bm25)", "itemknn", "ease"}
    for m in f["methods"].values():
        assert 0.0 <= m["r_precision"] <= 1.0 and 0.0 <= m["ndcg"] <= 1.0
        assert 0.0 <= m["clicks"] <= 51 and set(m["categories"]) <= set(f["categories"])
    # planted structure: the embedding is far above popularity
    assert f["methods"]["dynplayer"]["ndcg"] > 1.5 * f["methods"]["popularity"]["ndcg"]
    assert f["peers"]["itemknn"]["validation"] and "params" in f["peers"]["ease"]
    v = f["verdict"]
    assert v["method"] == "dynplayer" and v["overall"]["ndcg"]["ratio"] > 0
    assert out["peers"] == {}  # the seed table's peers are not fitted for --protocol field


def test_field_protocol_bad_flags_are_one_line_errors(run_dir: Path) -> None:
    for flags, message in ((["--protocol", "both2"], "--protocol must be both, seed or field"),
                           (["--categories", "winners"], "--categories must be one of"),
                           (["--field-peers", "svd"], "--field-peers: unknown peer(s) svd")):
        res = CliRunner().invoke(app, ["evaluate", str(run_dir), *flags])
        assert isinstance(res.exception, ConfigError) and message in str(res.exception)
