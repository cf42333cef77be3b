"""A playlist's name as evidence for the second stage: the text model's score of every track for
the name (`dynplayer search` over the name, before its top k is cut), as a dense row the
candidates and features read (`Queries.title`).

A ranker learns from carved-out *training* playlists, which the text model can retrieve by their
own caption: their own row is left out of the search (`exclude`), so the name is evidence the
way it is for a playlist the text model never saw.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dynplayer.errors import QueryError


class TitleEvidence:
    """Dense (n, V) text scores of run rows for a batch of names (NaN rows: no name)."""

    def __init__(self, searcher: object, run_ids: list[str]) -> None:
        from dynplayer.text.search import TextSearcher

        assert isinstance(searcher, TextSearcher)
        self.searcher = searcher
        row_of = {t: i for i, t in enumerate(run_ids)}
        self.cols = np.array([row_of.get(t, -1) for t in searcher.track_ids], dtype=np.int64)
        self.n_items = len(run_ids)
        self.row_of_pid = {p: i for i, p in enumerate(searcher.playlist_pids)}

    @classmethod
    def load(cls, run_dir: Path, run_ids: list[str]) -> TitleEvidence | None:
        """The run's text model as title evidence; None when the run has none."""
        if not (Path(run_dir) / "text").is_dir():
            return None
        from dynplayer.text.search import TextSearcher

        return cls(TextSearcher.load(Path(run_dir)), run_ids)

    def scores(self, name: str, exclude: str | None = None) -> np.ndarray | None:
        """(V_text,) the searcher's final scores of its tracks for `name` (0: not found), the
        playlist `exclude` (a pid) left out of the retrieved ones; None for an unusable name."""
        s = self.searcher
        try:
            text = s.bridged(name) or name
            q = s.encode_query(text)
        except QueryError:
            return None
        m = s.cfg.top_playlists
        rows, sims = s.top_playlists(q[None, :], m + 1)
        rows, sims = rows[0], sims[0]
        skip = self.row_of_pid.get(exclude) if exclude is not None else None
        keep = rows != skip if skip is not None else np.ones(rows.shape[0], dtype=bool)
        rows, sims = rows[keep][:m], sims[keep][:m]
        w = np.clip(sims, 0.0, None) ** s.cfg.sim_power
        scores = np.asarray((w[None, :] @ s.occ[rows]).ravel(), dtype=np.float64)
        if s.cfg.prf_weight > 0 and s.track_vectors is not None:
            scores = s._feedback(scores, rows, w)
        out: np.ndarray = s.with_metadata(scores[None, :].astype(np.float32), [text])[0]
        return out

    def dense(self, names: list[str | None], exclude: list[str | None] | None = None
              ) -> np.ndarray:
        """(n, V) scores over run rows, each row divided by its maximum; NaN rows where the
        name is missing or unusable (the ranker reads NaN as "no name")."""
        out = np.full((len(names), self.n_items), np.nan, dtype=np.float32)
        ok = self.cols >= 0
        for i, name in enumerate(names):
            if not name:
                continue
            s = self.scores(name, exclude[i] if exclude else None)
            if s is None:
                continue
            top = float(s.max()) if s.size else 0.0
            out[i] = 0.0
            out[i, self.cols[ok]] = s[ok] / top if top > 0 else 0.0
        return out
