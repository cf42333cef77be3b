"""The Python API, for notebooks and scripts: a trained run in memory, asked as the service is.

    from dynplayer import Dynplayer
    m = Dynplayer.load("runs/mpd")
    m.search("rainy day jazz", k=10).to_pandas()
    m.similar("hey jude")                  # a track id, spotify:track:ID, a link, or a name
    m.recommend(["hey jude", "blackbird", "spotify:track:7ouMYWpwJ422jRcDASZB7P"], k=20)
    m.find_tracks("beyonce")               # lookup by name or artist (accents, typos)

Every method is a thin call into `dynplayer.serve.recommender.ExactRecommender`, the exact
backend the API serves with `--backend exact` (and the reference the pgvector backend is
measured against), with the run's second stage for continuations as the API has it, so a
notebook, `dynplayer similar/search/recommend` and the service give the same answers; names are
resolved by the one resolver of the CLI (`dynplayer.serve.resolve`). Results are typed
(`Results` of `Track`) and `to_pandas()` turns them into a DataFrame (pandas is optional:
`pip install pandas`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from dynplayer.errors import DynplayerError, QueryError
from dynplayer.serve.limits import check_k, check_text
from dynplayer.serve.recommender import (
    ExactRecommender,
    TrackInfo,
    TrackResult,
    text_playlists_of,
)
from dynplayer.serve.resolve import TrackResolver, UnknownTrackName
from dynplayer.serve.track_search import holds_words

if TYPE_CHECKING:
    import pandas

    from dynplayer.text.api import PlaylistHit


@dataclass(frozen=True)
class Track:
    """One answer: the track, its rank (1 = best) and score (None for a name lookup), and for
    a text query the captions of the playlists it came from, best first."""

    rank: int
    track_id: str
    name: str | None
    artist: str | None
    score: float | None = None
    because: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.name or self.track_id} - {self.artist or 'unknown artist'}"


@dataclass(frozen=True)
class Playlist:
    """A training playlist a text query matched (its caption and cosine similarity)."""

    pid: str
    caption: str
    similarity: float


@dataclass(frozen=True)
class Results(Sequence[Track]):
    """An ordered list of `Track`s (index it, iterate it, `len` it) with what was asked.

    `query` is the text, the seed ids or the track the answer is for; `unknown` lists seed ids
    the model does not know (`recommend`); `playlists` the playlists a text query matched;
    `searched_as` the text as searched when Korean loanwords in it were bridged (`search`);
    `confidence` and `match` how well a text query matched the captions (`search`: "close",
    "weak" or "nothing", see `dynplayer.text.confidence`)."""

    kind: str  # similar | recommend | search | find_tracks
    query: str | tuple[str, ...]
    tracks: tuple[Track, ...]
    model_version: str
    unknown: tuple[str, ...] = ()
    playlists: tuple[Playlist, ...] = field(default=(), repr=False)
    searched_as: str | None = None  # search: the text with Korean loanwords bridged, if any
    near_misses: bool = False  # find_tracks: nothing matched; these are the closest names
    confidence: float | None = None  # search: calibrated on validation captions
    match: str | None = None  # search: "close" | "weak" | "nothing" (None: not calibrated)

    @overload
    def __getitem__(self, i: int) -> Track: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[Track]: ...

    def __getitem__(self, i: int | slice) -> Track | Sequence[Track]:
        return self.tracks[i]

    def __len__(self) -> int:
        return len(self.tracks)

    def __iter__(self) -> Iterator[Track]:
        return iter(self.tracks)

    @property
    def track_ids(self) -> list[str]:
        return [t.track_id for t in self.tracks]

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per track (rank, track_id, name, artist, score, because)."""
        return [{**asdict(t), "because": list(t.because)} for t in self.tracks]

    def to_pandas(self) -> pandas.DataFrame:
        """The tracks as a DataFrame, one row per track, indexed by rank."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise DynplayerError("Results.to_pandas() needs pandas, which is not installed "
                                 "(pip install pandas); to_records() gives plain dicts") from exc
        columns = ["rank", "track_id", "name", "artist", "score", "because"]
        return pd.DataFrame(self.to_records(), columns=columns).set_index("rank")

    def __str__(self) -> str:
        lines = [f"{self.kind} {self.query!r}: {len(self.tracks)} tracks "
                 f"(model {self.model_version})"]
        for t in self.tracks:
            score = "" if t.score is None else f"{t.score:.3f}  "
            lines.append(f"{t.rank:>3}. {score}{t.track_id}  {t.label}")
        return "\n".join(lines)


def _results(kind: str, query: str | tuple[str, ...], version: str,
             hits: Sequence[TrackResult | TrackInfo], **extra: Any) -> Results:
    tracks = tuple(
        Track(rank=i, track_id=h.track_id, name=h.name, artist=h.artist,
              score=float(h.score) if isinstance(h, TrackResult) else None,
              because=tuple(p.caption for p in h.because) if isinstance(h, TrackResult)
              else ())
        for i, h in enumerate(hits, start=1))
    return Results(kind=kind, query=query, tracks=tracks, model_version=version, **extra)


def _playlists(hits: Sequence[PlaylistHit]) -> tuple[Playlist, ...]:
    return tuple(Playlist(h.pid, h.caption, float(h.similarity)) for h in hits)


class Dynplayer:
    """A trained run in memory: its tracks first; the text model on the first `search` and the
    second stage (RUN_DIR/ranker/) on the first `recommend`, so each question pays only for
    what it needs."""

    def __init__(self, recommender: ExactRecommender, run_dir: Path | None = None, *,
                 text: bool = True, search_settings: dict[str, Any] | None = None,
                 ranker: bool = True) -> None:
        self.recommender = recommender
        self.run_dir = run_dir
        self._text = text and run_dir is not None and (run_dir / "text").is_dir()
        self._search_settings = dict(search_settings or {})
        self._run: Any = None  # the loaded run, kept until the text model takes it
        if ranker and run_dir is not None and recommender.reranker is None:
            from dynplayer.rank.stage import has_ranker

            if has_ranker(run_dir):
                from dynplayer.rank.serving import LazyServingRanker

                recommender.reranker = LazyServingRanker(run_dir)

    @classmethod
    def load(cls, run_dir: str | Path, *, text: bool = True, ranker: bool = True,
             **search_settings: Any) -> Dynplayer:
        """Load RUN_DIR (written by `dynplayer train`, with `train-text` for `search`).

        `text=False` leaves the text model out (`search` then raises); `ranker=False` continues
        playlists by the embedding alone even when RUN_DIR/ranker/ exists (with it, as the API
        does, on both backends). `search_settings` change the text model's search settings
        (top_playlists, prf_weight, ...), as `dynplayer search --set` does."""
        from dynplayer.run import check_run_dir, load_run
        from dynplayer.store.catalog import track_catalog

        path = check_run_dir(Path(run_dir))
        if search_settings and not (text and (path / "text").is_dir()):
            raise DynplayerError(f"{path}: search settings given but the run has no text model")
        run = load_run(path)
        model = cls(ExactRecommender(track_catalog(path, run=run)), path, text=text,
                    search_settings=search_settings, ranker=ranker)
        if model._text:  # the text model is loaded beside the same run: read it once
            model._run = run
        return model

    def _with_text(self) -> ExactRecommender:
        """The recommender with the run's text model attached (loaded on first use)."""
        rec = self.recommender
        if rec.searcher is None and self._text:
            from dynplayer.text.search import TextSearcher

            assert self.run_dir is not None
            searcher = TextSearcher.load(self.run_dir, run=self._run, **self._search_settings)
            self._run = None
            rec.text_playlists = text_playlists_of(searcher)
            rec.searcher = searcher
        return rec

    # ---- facts --------------------------------------------------------------------------------
    @property
    def model_version(self) -> str:
        return self.recommender.version

    @property
    def has_text(self) -> bool:
        return self.recommender.has_text or self._text

    @property
    def has_ranker(self) -> bool:
        """Whether continuations come from the learned second stage."""
        return self.recommender.reranker is not None

    @property
    def track_ids(self) -> list[str]:
        return list(self.recommender.catalog.track_ids)

    def __len__(self) -> int:
        return len(self.recommender.catalog.track_ids)

    def __repr__(self) -> str:
        text = "with" if self.has_text else "without"
        return (f"Dynplayer({str(self.run_dir)!r}: {len(self):,} tracks, {text} a text model, "
                f"model {self.model_version})")

    # ---- questions ----------------------------------------------------------------------------
    @cached_property
    def resolver(self) -> TrackResolver:
        """The one resolver of track ids and names (`dynplayer.serve.resolve`)."""
        c = self.recommender.catalog
        return TrackResolver(c.track_ids, c.names, c.artists, c.popularity,
                             matcher=self.recommender.matcher)

    def resolve(self, track: str) -> str:
        """The track id `track` names: an id, `spotify:track:ID`, a track link, or else a name
        ("hey jude", "feeling good nina simone"; `dynplayer.serve.resolve` says how a name is
        matched). An unknown name raises `UnknownTrackName`, one that fits several songs about
        equally well `AmbiguousTrackName` listing them (both `QueryError`s)."""
        return self.recommender.catalog.track_ids[self.resolver.resolve(track).row]

    def track(self, track: str) -> Track:
        """The track `track` names (see `resolve`), with its name and artist (rank 0)."""
        tid = self.resolve(track)
        info = self.recommender.track_info([tid])[tid]
        return Track(rank=0, track_id=tid, name=info.name, artist=info.artist)

    def similar(self, track: str, k: int = 10, max_per_artist: int | None = None) -> Results:
        """The k tracks nearest to `track` (an id, URI, link or name; see `resolve`), at most
        `max_per_artist` per artist (None: the default, `dynplayer.diversity`; 0: no cap)."""
        check_k(k)
        tid = self.resolve(track)
        return _results("similar", tid, self.model_version,
                        self.recommender.similar(tid, k, max_per_artist))

    def recommend(self, seeds: Sequence[str] = (), k: int = 20, name: str | None = None,
                  max_per_artist: int | None = None) -> Results:
        """The next k tracks for a playlist holding `seeds` (ids, URIs, links or names, each
        resolved as `resolve` does; the seeds are never recommended), with the second stage
        when the run has one, exactly as the API answers, at most `max_per_artist` per artist
        (see `similar`); `name`, the playlist's name, is evidence for the second stage, and
        alone (or with no seed the model knows) it is answered by the text model. Seeds that
        name no track are listed in `unknown` (as the API lists unknown ids); an ambiguous name
        raises."""
        check_k(k)
        if isinstance(seeds, str):
            raise QueryError("seeds must be a list of track ids or names, not one string")
        ids = []
        for seed in seeds:
            try:
                ids.append(self.resolve(seed))
            except UnknownTrackName:
                ids.append(seed)  # the recommender reports it in `unknown`
        if name is not None:
            self._with_text()
        answer = self.recommender.continue_playlist(ids, k, name=name,
                                                    max_per_artist=max_per_artist)
        return _results("recommend", tuple(answer.seeds), self.model_version, answer.tracks,
                        unknown=tuple(answer.unknown))

    def search(self, text: str, k: int = 20, max_per_artist: int | None = None) -> Results:
        """Tracks for free text ("rainy day jazz"), each with the playlists it came from, and
        how well the text matched them (`confidence`, `match`), at most `max_per_artist` per
        artist (see `similar`)."""
        check_k(k)
        check_text(text)
        rec = self._with_text()
        answer = rec.text_answer(text, k, max_per_artist)
        return _results("search", text, self.model_version, answer.tracks,
                        playlists=_playlists(answer.playlists), searched_as=answer.searched_as,
                        confidence=answer.confidence, match=answer.match)

    def find_tracks(self, q: str, limit: int = 10) -> Results:
        """Tracks by name or artist: case-, accent- and typo-tolerant, most popular first;
        `near_misses` is true when nothing matched `q` and these are the closest names."""
        found = self.recommender.search_tracks(q, limit)
        return _results("find_tracks", q, self.model_version, found,
                        near_misses=bool(found) and not holds_words(q, found[0].name,
                                                                    found[0].artist))


__all__ = ["Dynplayer", "Playlist", "Results", "Track"]
