"""`dynplayer evaluate` and `bench evaluate` / `bench uniformity`: the evaluation stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from dynplayer.commands.bench import bench_app

DOC = Path("docs/benchmarks.md")


REPORT_FILES = {"metrics.json", "report.md", "report.html", "plots"}


def _check_report_dir(out: Path) -> None:
    """`evaluate --out` replaces the directory whole: it must be new, empty or an earlier
    report (its files and nothing else: a run directory has a metrics.json too)."""
    from dynplayer.errors import ConfigError

    names = {p.name for p in out.iterdir()} if out.is_dir() else set()
    if (out.exists() and not out.is_dir()) or not names <= REPORT_FILES or (
            names and not (out / "metrics.json").is_file()):
        raise ConfigError(f"--out {out}: exists and is not an evaluation report (files other "
                          "than metrics.json, report.md, report.html, plots/); name a new or "
                          "empty directory")


def register(app: typer.Typer) -> None:
    """Add the evaluation subcommands to the app."""

    @app.command()
    def evaluate(
        run_dir: Annotated[Path, typer.Argument(help="Run directory (dynplayer train)")],
        peers: Annotated[
            str, typer.Option(help="all | none | comma list of popularity,itemknn,ease,als,"
                              "bpr,item2vec")
        ] = "all",
        test_split: Annotated[
            Path | None, typer.Option(help="JSON lines {pid, visible, heldout} to evaluate "
                                      "instead of the corpus split")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print metrics JSON on stdout")]
        = False,
        split: Annotated[str, typer.Option(help="Corpus split to evaluate: val | test")]
        = "test",
        threads: Annotated[int, typer.Option(help="Threads for ALS / BPR / item2vec")] = 2,
        no_probe: Annotated[bool, typer.Option("--no-probe", help="Skip the genre probe")]
        = False,
        no_hubness: Annotated[
            bool, typer.Option("--no-hubness", help="Skip the hubness diagnostics")
        ] = False,
        protocol: Annotated[
            str, typer.Option(help="both | seed | field: the seed's table (the head), the "
                              "field's whole-catalogue table, or both")
        ] = "both",
        categories: Annotated[
            str, typer.Option(help="Field protocol cases: challenge (the RecSys Challenge "
                              "2018's ten categories) | first-n (APC-RTA: first 1..10, no title)")
        ] = "challenge",
        field_peers: Annotated[
            str, typer.Option(help="Whole-catalogue peers: all | none | comma list of "
                              "popularity,title,itemknn,ease,als,item2vec")
        ] = "all",
        out: Annotated[
            Path | None, typer.Option(help="Write the report here instead of RUN_DIR/eval/ "
                                      "(e.g. a validation run beside the test report)")
        ] = None,
    ) -> None:
        """Evaluate a run beside its peers; write RUN_DIR/eval/ (metrics.json, report, plots)."""
        from dynplayer.eval.field_eval import field_options
        from dynplayer.eval.peers import parse_peers
        from dynplayer.eval.runner import EvalOptions, evaluate_run
        from dynplayer.rank.listing import dynplayer_methods

        if out is not None:
            _check_report_dir(out)
        fopts = field_options(protocol, categories, field_peers, threads)
        seed = protocol != "field"
        opts = EvalOptions(peers=parse_peers(peers) if seed else [], test_split=test_split,
                           split=split, hubness=not no_hubness and seed,
                           probe=not no_probe and seed, threads=threads, field_protocol=fopts,
                           out=out)
        from dynplayer.rank.stage import has_ranker, load_stage

        if fopts is not None:
            opts.field_methods = dynplayer_methods(run_dir)
        if has_ranker(run_dir) and seed:  # the two-stage row beside the embedding row
            opts.extra["dynplayer two-stage"] = load_stage
        result = evaluate_run(run_dir, opts, log=lambda m: typer.echo(m, err=True))
        if as_json:
            result.pop("written", None)
            typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
            return
        from dynplayer.eval.report import methods_table

        if seed:
            typer.echo(methods_table(result))
            typer.echo(result["verdict"]["text"])
            if "verdict dynplayer two-stage" in result:
                typer.echo("Two-stage: " + result["verdict dynplayer two-stage"]["text"])
        if "field" in result:
            from dynplayer.eval.field_report import field_table, verdict_text

            typer.echo(field_table(result["field"]))
            typer.echo("Whole catalogue: " + verdict_text(result["field"]))
        typer.echo(f"wrote {out or run_dir / 'eval'} (metrics.json, report.md, report.html, "
                   "plots/)")

    @bench_app.command("evaluate")
    def bench_evaluate(
        run_dir: Annotated[Path, typer.Argument(help="Run directory to evaluate")] = Path(
            "/tmp/run_eval"),
        doc: Annotated[Path, typer.Option(help="Benchmarks file to update")] = DOC,
        threads: Annotated[int, typer.Option(help="Threads for ALS / BPR / item2vec")] = 2,
        machine: Annotated[str, typer.Option(help="Machine description for the table")]
        = "2-core CPU dev container",
    ) -> None:
        """Evaluate RUN_DIR with all peers on its corpus' test split, under the seed's protocol
        and the field's (whole catalogue); rewrite both tables in DOC."""
        from dynplayer.eval.bench import evaluation_section, field_section, replace_block
        from dynplayer.eval.field_eval import FieldOptions
        from dynplayer.eval.peers import parse_peers
        from dynplayer.eval.runner import EvalOptions, evaluate_run
        from dynplayer.rank.listing import dynplayer_methods
        from dynplayer.rank.stage import has_ranker, load_stage

        opts = EvalOptions(peers=parse_peers("all"), threads=threads,
                           field_protocol=FieldOptions(threads=threads),
                           field_methods=dynplayer_methods(run_dir))
        if has_ranker(run_dir):
            opts.extra["dynplayer two-stage"] = load_stage
        result = evaluate_run(run_dir, opts, log=lambda m: typer.echo(m, err=True))
        command = f"dynplayer bench evaluate {run_dir}"
        text = evaluation_section(result, command, machine)
        replace_block(doc, "evaluate", text)
        field = field_section(result, command, machine)
        replace_block(doc, "field", field)
        typer.echo(text + "\n\n" + field)

    @bench_app.command("uniformity")
    def bench_uniformity(
        corpus_dir: Annotated[Path, typer.Argument(help="Corpus directory")] = Path("/tmp/c_mpd"),
        out: Annotated[Path, typer.Option(help="Directory for the three runs")] = Path(
            "/tmp/run_uniformity"),
        values: Annotated[str, typer.Option(help="Uniformity weights, comma separated")]
        = "0,0.5,1.0",
        set_: Annotated[
            list[str] | None, typer.Option("--set", help="Extra train override, e.g. steps=600")
        ] = None,
        split: Annotated[str, typer.Option(help="val | test")] = "test",
        doc: Annotated[Path, typer.Option(help="File to update (an ablation: experiments.md)")]
        = Path("docs/experiments.md"),
        block: Annotated[str, typer.Option(help="Name of the block in DOC to rewrite")]
        = "uniformity",
        machine: Annotated[str, typer.Option(help="Machine description for the table")]
        = "2-core CPU dev container",
    ) -> None:
        """Pairwise objective at each uniformity weight u: Recall/NDCG@10,20 and hubness."""
        from dynplayer.errors import ConfigError
        from dynplayer.eval.bench import replace_block
        from dynplayer.train.bench import uniformity_sweep

        sets = list(set_ or [])
        try:
            us = [float(v) for v in values.split(",") if v.strip()]
        except ValueError as exc:
            raise ConfigError(f"--values expects comma-separated numbers such as 0,0.5,1.0, "
                              f"got {values!r}") from exc
        if not us or not all(0.0 <= u < float("inf") for u in us):
            raise ConfigError(f"--values expects one or more weights >= 0, got {values!r}")
        cmd = (f"dynplayer bench uniformity {corpus_dir} --out {out} --values {values} --split "
               f"{split}" + "".join(f" --set {s}" for s in sets)
               + (f" --block {block}" if block != "uniformity" else ""))
        text = uniformity_sweep(corpus_dir, out, us, sets, split, cmd, machine,
                                log=lambda m: typer.echo(m, err=True))
        replace_block(doc, block, text)
        typer.echo(text)
