"""Two more library answers: free text -> a playlist from the library, and "discover" (tracks of
the catalogue the library lacks that fit a mix, with the playlists behind them)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from dynplayer.errors import QueryError
from dynplayer.library.answers import Answer, LibraryModel, _check_k
from dynplayer.run import l2_normalize


class TextModelMissing(QueryError):
    """A text query to a run without a text model."""


def search(model: LibraryModel, text: str, k: int = 20, per_artist: int = 3) -> Answer:
    """Library tracks for free text ("rainy day jazz", "신나는 여름 노래"), as the text model
    scores catalogue tracks (`TextSearcher`: top playlists, occurrence x similarity^power,
    pseudo-relevance feedback, artist / genre match), each with the playlists behind it."""
    from dynplayer.text.search import check_query

    _check_k(k)
    s = model.searcher
    if s is None:
        raise TextModelMissing(f"{model.run.path}: no text model (run `dynplayer train-text`)")
    t0 = time.perf_counter()
    searched_as = s.bridged(text)
    norm = check_query(searched_as or text)
    q = s.encode_queries([norm])[0]
    rows, sims = s.top_playlists(q[None, :])
    rows, sims = rows[0], sims[0]
    w = np.clip(sims, 0.0, None).astype(np.float32) ** s.cfg.sim_power
    col_of = {t: j for j, t in enumerate(s.track_ids)}
    lib_cols = np.array([col_of.get(model.run.ids[r], -1) if r >= 0 else -1
                         for r in model.run_row.tolist()], dtype=np.int64)
    has = lib_cols >= 0
    sub = s.occ[rows]  # (m, V_text)
    agg = np.zeros(len(model.ids), dtype=np.float32)
    if has.any():
        agg[has] = np.asarray(w @ sub[:, lib_cols[has]].toarray()).ravel()
    score = agg / max(float(agg.max()), 1e-30)
    if s.cfg.prf_weight > 0 and s.playlist_means is not None:
        pseudo = l2_normalize((w @ s.playlist_means[rows])[None, :])[0]
        score = score + s.cfg.prf_weight * np.clip(model.vecs @ pseudo, 0.0, None)
    match = np.zeros(len(model.ids), dtype=np.float32)
    if max(s.match_weights.values()) > 0 and not s.metadata.empty and has.any():
        m = s.metadata.batch([norm], s.match_weights, s.cfg.match_power)[0]
        match[has] = m[lib_cols[has]]
        score = score + match
    score[~model.usable] = -np.inf
    order = np.argsort(-score, kind="stable")
    order = order[np.isfinite(score[order])]
    out, out_s = model._pick(order.tolist()[:k * 4 + 50], score[order[:k * 4 + 50]], k,
                             per_artist, [])
    dense = sub[:, lib_cols[out].clip(0)].toarray() if out else np.zeros((rows.size, 0))
    because = []
    for j, i in enumerate(out):
        b: dict[str, Any] = {"id": model.ids[i], "placed": model.placed[i]}
        contrib = w * dense[:, j] if lib_cols[i] >= 0 else np.zeros(rows.size, np.float32)
        top = [int(p) for p in np.argsort(-contrib, kind="stable")[:3] if contrib[p] > 0]
        if top:
            b["playlists"] = [{"pid": s.playlist_pids[rows[p]],
                               "caption": s.playlist_captions[rows[p]],
                               "similarity": round(float(sims[p]), 4)} for p in top]
            b["why"] = (f"in {int((contrib > 0).sum())} of the {rows.size} playlists that "
                        "fit the text")
        elif match[i] > 0:
            b["why"] = "its artist or genre is named in the text"
        else:
            b["why"] = "close to the playlists that fit the text, in the track space" + (
                f" (placed by its artist {model.library.matches[i].artist})"
                if model.placed[i] == "artist" else "")
        because.append(b)
    return Answer("search", [model.ids[i] for i in out], because, out_s, method="text",
                  searched_as=searched_as, ms=1e3 * (time.perf_counter() - t0))


def discover(model: LibraryModel, seeds: list[str], k: int = 20, per_artist: int = 2) -> Answer:
    """Catalogue tracks the library does not hold that continue `seeds` (library ids or
    names), each with the training playlists holding it and the seeds."""
    _check_k(k)
    t0 = time.perf_counter()
    rows, said = model.resolve(seeds)
    use = [r for r in rows if model.usable[r]]
    if not use:
        raise QueryError("none of the seeds has a place in the track space")
    runs = [int(model.run_row[r]) for r in use if model.run_row[r] >= 0]
    allowed = ~model.owned
    method = "embedding"
    n = min(k * 4 + 20, int(allowed.sum()))
    if model.stage is not None and runs:
        from dynplayer.rank.candidates import Queries

        (cols, scores), = model.stage.rank(Queries(np.array([0, len(runs)], np.int64),
                                                   np.asarray(runs, np.int64)), n,
                                           allowed=allowed)
        order, vals, method = cols.tolist(), scores.tolist(), "two-stage"
    else:
        q = l2_normalize(model.vecs[use].mean(axis=0, keepdims=True))[0]
        cos = model.run.vectors @ q
        cos[~allowed] = -np.inf
        top = np.argsort(-cos, kind="stable")[:n]
        order, vals = top.tolist(), cos[top].tolist()
    c = model.corpus
    seen: set[tuple[str, str]] = set()
    per: dict[str, int] = {}
    out, out_s, because = [], [], []
    from dynplayer.library.tagkeys import identity, primary_artist

    for r, v in zip(order, vals, strict=True):
        t = int(model.vocab[r])
        ident = identity(c.artists[t], c.track_names[t])
        a = primary_artist(c.artists[t])
        if ident in seen or (per_artist and per.get(a, 0) >= per_artist):
            continue
        seen.add(ident)
        per[a] = per.get(a, 0) + 1
        out.append(model.run.ids[r])
        out_s.append(float(v))
        because.append(_discover_because(model, r, runs, t))
        if len(out) == k:
            break
    return Answer("discover", out, because, out_s, seeds=[model.ids[s] for s in rows],
                  method=method, resolved=said, ms=1e3 * (time.perf_counter() - t0))


def _discover_because(model: LibraryModel, r: int, seed_runs: list[int], t: int
                      ) -> dict[str, Any]:
    c = model.corpus
    out: dict[str, Any] = {"track_id": model.run.ids[r], "name": c.track_names[t],
                           "artist": c.artists[t]}
    shared = model.shared_playlists(r, seed_runs) if seed_runs else None
    if shared is not None:
        cols, per_pl, _ = shared
        order = np.lexsort((cols, -per_pl))[:3]
        out["playlists"] = [model._playlist(int(cols[j])) for j in order]
        out["why"] = f"in {cols.size} playlist{'s' * (cols.size != 1)} with your seeds"
        return out
    out["why"] = "close to your seeds in the track space"
    return out


__all__ = ["TextModelMissing", "discover", "search"]
