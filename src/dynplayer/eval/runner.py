"""`dynplayer evaluate`: one run against its peers on the same split, plus diagnostics.

Writes RUN_DIR/eval/ atomically (a temporary sibling directory, then a swap):
  metrics.json   {"run", "split", "methods": {name: {"recall@10", ...}}, "peers": {name:
                 {"params", "validation", ...}}, "hubness", "probe", "verdict", "timings"}
  report.md      side-by-side tables and the verdict, linking the PNGs
  report.html    the same, self-contained (PNGs embedded)
  plots/*.png    the headline chart (headline_metrics.png) and the hubness plots
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dynplayer.data.corpus import SPLIT_NAMES, TEST, TRAIN, VAL, Corpus, load_corpus
from dynplayer.errors import ArtifactError, ConfigError
from dynplayer.eval.budget import ease_fits
from dynplayer.eval.field_eval import FieldOptions, MethodFactory, evaluate_field, field_verdict
from dynplayer.eval.hubness import hubness_stats, plot_hubness, public
from dynplayer.eval.peers import GRIDS, TrainData, tune_peer
from dynplayer.eval.probe import linear_probe, random_vectors
from dynplayer.eval.protocol import (
    EvalSet,
    corpus_eval_set,
    embedding_scorer,
    evaluate_scorer,
    load_split_file,
)
from dynplayer.eval.report import headline_chart, verdict, write_reports
from dynplayer.run import Run, atomic_directory, atomic_write_json, load_run

MODEL = "dynplayer"
# Peers whose item vectors are also probed and checked for hubness.
VECTOR_PEERS = ("als", "item2vec")


@dataclass
class EvalOptions:
    peers: list[str] = field(default_factory=list)
    test_split: Path | None = None
    split: str = "test"
    hubness: bool = True
    probe: bool = True
    threads: int = 2
    grids: dict[str, list[dict[str, Any]]] | None = None  # None: peers.GRIDS
    # A split larger than this is evaluated on this many of its playlists, drawn with a fixed
    # seed (validation for tuning and the test split alike); 0 = all. The MPD slices (1,061 /
    # 707) are whole; at 1M playlists the 150,000 test playlists become 10,000.
    max_playlists: int = 10_000
    memory_bytes: int = 0  # memory EASE may take half of; 0 = MemAvailable of this machine
    # Dynplayer's other rankings shown beside the embedding row (e.g. the two-stage ranker:
    # `commands.evaluate` adds it when RUN_DIR/ranker/ exists): name -> factory(run, corpus,
    # vocab) -> scorer. Names start with "dynplayer" so the verdict does not count them as peers.
    extra: dict[str, Callable[[Run, Corpus, np.ndarray], Any]] = field(default_factory=dict)
    # The whole-catalogue table under the field's protocol (eval/field_eval.py); None = not
    # run. `field_methods`: Dynplayer's rows there (name -> factory, rank/listing.py).
    field_protocol: FieldOptions | None = None
    field_methods: dict[str, MethodFactory] = field(default_factory=dict)
    out: Path | None = None  # where the report goes; None = RUN_DIR/eval


def on_rows(scorer: Any, rows: np.ndarray, n_full: int) -> Any:
    """A scorer over a run's whole vocabulary restricted to its `rows`: visible tracks (and
    their order) are placed at `rows`, and the scores of `rows` come back."""
    import scipy.sparse as sp

    def lift(m: sp.csr_matrix) -> sp.csr_matrix:
        m = m.tocsr()
        return sp.csr_matrix((m.data, rows[m.indices], m.indptr), shape=(m.shape[0], n_full))

    def score(visible: sp.csr_matrix, order: sp.csr_matrix | None = None) -> np.ndarray:
        if getattr(scorer, "ordered", False) and order is not None:
            out = scorer(lift(visible), lift(order))
        else:
            out = scorer(lift(visible))
        return np.asarray(out)[:, rows]

    score.ordered = getattr(scorer, "ordered", False)  # type: ignore[attr-defined]
    return score


def run_vocab(run: Run, corpus: Corpus) -> np.ndarray:
    """Corpus track_idx of each run row; every run track must be in the corpus."""
    index = {t: i for i, t in enumerate(corpus.track_ids)}
    missing = [t for t in run.ids if t not in index]
    if missing:
        raise ArtifactError(f"{run.path}: {len(missing)} track ids of the run are not in the "
                            f"corpus {run.corpus_dir} (first: {missing[0]})")
    return np.array([index[t] for t in run.ids], dtype=np.int64)


def describe_run(run: Run) -> dict[str, Any]:
    """What the report says about the model: its path and the training choices that matter."""
    keys = ("objective", "init", "mix_weight", "dim", "temperature", "uniformity", "logq",
            "epochs", "steps", "lr", "seeds", "seed")
    cfg = run.config
    flat = cfg.get("train", cfg) if isinstance(cfg.get("train"), dict) else cfg
    return {"path": str(run.path.resolve()), "corpus_dir": str(run.config.get("corpus_dir")),
            "n_tracks": len(run.ids), "dim": int(run.vectors.shape[1]),
            "config": {k: flat[k] for k in keys if k in flat}}


def evaluate_run(
    run_dir: Path,
    opts: EvalOptions,
    *,
    log: Callable[[str], None] | None = None,
    write: bool = True,
) -> dict[str, Any]:
    """Evaluate a run and its peers on one split; write RUN_DIR/eval/ (unless write=False)."""
    say = log or (lambda _m: None)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    run = load_run(run_dir)
    corpus = load_corpus(run.corpus_dir)
    full_vocab = run_vocab(run, corpus)
    split_id = SPLIT_NAMES.get(opts.split)
    if split_id not in (VAL, TEST):
        raise ConfigError(f"--split must be val or test, got {opts.split!r}")
    # The seed's protocol ranks the head (the seed's top-5% vocabulary) only: a run trained on
    # the whole catalogue is scored there on its head rows, so the figures compare with runs
    # trained on the head alone.
    # An external split file is scored over the whole vocabulary.
    head_rows = (np.arange(full_vocab.shape[0]) if opts.test_split is not None
                 else np.flatnonzero(np.isin(full_vocab, corpus.head_vocab())))
    whole = head_rows.shape[0] == full_vocab.shape[0]
    vocab = full_vocab[head_rows]
    head_vectors = run.vectors if whole else run.vectors[head_rows]

    es, split_info = _eval_set(corpus, run, vocab, opts, split_id)
    if run.config.get("full") and opts.test_split is None and split_id == TEST:
        split_info["warning"] = ("the run was trained with --full (test playlists included), "
                                 "so its test figures are not a fair comparison")
        say(f"WARNING: {split_info['warning']}")
    say(f"evaluating {es.n:,} playlists ({split_info['source']}) over {len(run.ids):,} tracks; "
        f"{es.skipped:,} skipped (no visible or no held-out vocabulary track)")
    if es.dropped_unknown:
        d = es.dropped_unknown
        say(f"tracks outside the model's vocabulary dropped: {d['visible']:,} visible, "
            f"{d['heldout']:,} held out")

    methods: dict[str, dict[str, Any]] = {}
    t = time.perf_counter()
    methods[MODEL] = evaluate_scorer(embedding_scorer(head_vectors), es)
    timings[MODEL] = round(time.perf_counter() - t, 2)
    say(f"{MODEL}: recall@10 {methods[MODEL]['recall@10']:.4f} "
        f"ndcg@10 {methods[MODEL]['ndcg@10']:.4f}")

    for name, factory in opts.extra.items():
        t = time.perf_counter()
        scorer = factory(run, corpus, full_vocab)
        methods[name] = evaluate_scorer(scorer if whole else on_rows(scorer, head_rows,
                                                                      full_vocab.shape[0]), es)
        timings[name] = round(time.perf_counter() - t, 2)
        say(f"{name}: recall@10 {methods[name]['recall@10']:.4f} "
            f"ndcg@10 {methods[name]['ndcg@10']:.4f}")

    train_pl = corpus.playlists_in(TRAIN)
    train_matrix = corpus.interaction_matrix(train_pl, vocab=vocab)
    popularity = np.asarray(train_matrix.sum(axis=0)).ravel()
    peers_info: dict[str, dict[str, Any]] = {}
    item_vectors: dict[str, np.ndarray] = {MODEL: head_vectors}
    if opts.peers:
        seq_ip, seq_cols = corpus.sequences(train_pl, vocab=vocab)
        data = TrainData(train_matrix, seq_ip, seq_cols)
        val_es = corpus_eval_set(corpus, VAL, vocab)
        grids = opts.grids if opts.grids is not None else GRIDS
        val_es, _ = sample_eval_set(val_es, opts.max_playlists)
        for name in opts.peers:
            t = time.perf_counter()
            if name == "ease":
                fits, why = ease_fits(train_matrix.shape[0], train_matrix.shape[1],
                                      opts.memory_bytes)
                if not fits:
                    say(why)
                    peers_info[name] = {"skipped": why}
                    continue
            say(f"{name}: tuning on {val_es.n:,} validation playlists")
            tuned = tune_peer(
                name, data,
                lambda p: float(evaluate_scorer(p.score, val_es)["recall@10"]),
                grids.get(name, [{}]), threads=opts.threads, log=say,
            )
            methods[name] = evaluate_scorer(tuned.peer.score, es)
            timings[name] = round(time.perf_counter() - t, 2)
            peers_info[name] = {"params": tuned.params, "validation": tuned.validation,
                                "fit_seconds": round(tuned.fit_seconds, 2),
                                "seconds": timings[name]}
            say(f"{name} {tuned.params}: recall@10 {methods[name]['recall@10']:.4f} "
                f"ndcg@10 {methods[name]['ndcg@10']:.4f} ({timings[name]:.0f}s)")
            vec = tuned.peer.item_vectors()
            if name in VECTOR_PEERS and vec is not None:
                item_vectors[name] = vec
            del tuned

    hub: dict[str, dict[str, Any]] = {}
    if opts.hubness:
        t = time.perf_counter()
        for name, vec in item_vectors.items():
            hub[name] = hubness_stats(vec, popularity)
        timings["hubness"] = round(time.perf_counter() - t, 2)
        say("hubness k-occurrence skewness: "
            + ", ".join(f"{m} {h['k_occurrence_skewness']:.2f}" for m, h in hub.items()))

    probe: dict[str, Any] = {}
    if opts.probe:
        labels = corpus.genre_label[vocab] if corpus.genre_label is not None else None
        if labels is None or (labels >= 0).sum() < 10:
            probe = {"skipped": "the corpus has no genre labels (prepare --artist-genres)"}
        else:
            t = time.perf_counter()
            probe_vectors = dict(item_vectors)
            probe_vectors["random"] = random_vectors(vocab.shape[0], run.vectors.shape[1])
            for name, vec in probe_vectors.items():
                probe[name] = linear_probe(vec, labels)
            timings["probe"] = round(time.perf_counter() - t, 2)
            say("probe top-1: " + ", ".join(f"{m} {p['top1']:.3f}" for m, p in probe.items()))

    field_result: dict[str, Any] | None = None
    if opts.field_protocol is not None and opts.test_split is None:
        t = time.perf_counter()
        field_result = evaluate_field(run, corpus, full_vocab, split_id, opts.field_protocol,
                                      opts.field_methods, say)
        mine = [m for m in field_result["methods"] if m.startswith(MODEL)]
        if mine:
            field_result["verdict"] = field_verdict(field_result, mine[-1])
        timings["field"] = round(time.perf_counter() - t, 2)
    timings["total"] = round(time.perf_counter() - t_all, 2)
    result: dict[str, Any] = {
        "run": describe_run(run),
        "split": split_info,
        "methods": methods,
        "peers": peers_info,
        "hubness": {m: public(h) for m, h in hub.items()},
        "probe": probe,
        "verdict": verdict(methods, MODEL),
        **{f"verdict {name}": verdict({m: v for m, v in methods.items() if m != MODEL}, name)
           for name in opts.extra},
        "timings": timings,
        "threads": opts.threads,
        "protocol": ("seed: held-out tracks of the head (the seed's top-5% vocabulary), ranked "
                     f"over the head ({vocab.shape[0]:,} tracks)"),
    }
    if field_result is not None:
        result["field"] = field_result
    if write:
        result["written"] = _write(opts.out or run.path / "eval", result, hub)
    # The verdict is the caller's to print (`dynplayer evaluate` prints it on stdout): logged
    # here too, it appeared twice on a terminal.
    return _jsonable(result)


def _eval_set(corpus: Corpus, run: Run, vocab: np.ndarray, opts: EvalOptions,
              split_id: int | None) -> tuple[EvalSet, dict[str, Any]]:
    if opts.test_split is not None:
        es = load_split_file(opts.test_split, run.ids)
        train_pids = {corpus.pids[p] for p in corpus.playlists_in(TRAIN)}
        overlap = sum(p in train_pids for p in es.pids)
        return es, {"source": f"split file {opts.test_split}", "n_playlists": es.n,
                    "n_skipped": es.skipped, "dropped_unknown": es.dropped_unknown,
                    "playlists_also_in_training": overlap}
    assert split_id is not None
    es, total = sample_eval_set(corpus_eval_set(corpus, split_id, vocab), opts.max_playlists)
    name = "test" if split_id == TEST else "validation"
    info: dict[str, Any] = {"source": f"corpus {name} split", "n_playlists": es.n,
                            "n_skipped": es.skipped}
    if total > es.n:
        info["sampled_from"] = total
        info["source"] = (f"corpus {name} split (a seeded sample of {es.n:,} of its "
                          f"{total:,} playlists)")
    return es, info


def sample_eval_set(es: EvalSet, max_playlists: int, seed: int = 0) -> tuple[EvalSet, int]:
    """At most `max_playlists` rows of `es` (a seeded sample, kept in order); its full size."""
    if max_playlists <= 0 or es.n <= max_playlists:
        return es, es.n
    keep = np.sort(np.random.default_rng(seed).choice(es.n, max_playlists, replace=False))
    return EvalSet(visible=es.visible[keep], heldout=es.heldout[keep],
                   pids=[es.pids[i] for i in keep] if es.pids else [], skipped=es.skipped,
                   dropped_unknown=es.dropped_unknown), es.n


def _write(out: Path, result: dict[str, Any], hub: dict[str, dict[str, Any]]) -> list[str]:
    """Build the eval directory in a temporary sibling, then swap it into place."""
    with atomic_directory(out) as tmp:
        plots = plot_hubness(hub, tmp / "plots") if hub else {}
        result["plots"] = {k: f"plots/{v}" for k, v in plots.items()}
        result["chart"] = headline_chart(result["methods"], MODEL, tmp)
        files = ["metrics.json", *write_reports(tmp, result), result["chart"],
                 *result["plots"].values()]
        atomic_write_json(tmp / "metrics.json", _jsonable(result))
    return [str(out / f) for f in files]


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and obj != obj:  # NaN is not JSON
        return None
    return obj
