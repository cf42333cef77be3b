"""Request and response models of the API (`XRequest` / `XResponse`), and their validators."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from dynplayer.diversity import MAX_PER_ARTIST_LIMIT
from dynplayer.playlist_file import FORMATS
from dynplayer.serve.limits import K_MAX, SEEDS_MAX, TEXT_MAX
from dynplayer.serve.recommender import TrackResult


def clean_text(value: str) -> str:
    """Reject what no track id or query can contain and PostgreSQL cannot store."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text") from exc
    return value


def not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


CleanText = Annotated[str, AfterValidator(clean_text)]
TrackId = Annotated[str, StringConstraints(min_length=1, max_length=200),
                    AfterValidator(clean_text)]
K = Annotated[int, Field(ge=1, le=K_MAX, description=f"number of tracks, 1..{K_MAX}")]
MaxPerArtist = Annotated[int | None, Field(
    ge=0, le=MAX_PER_ARTIST_LIMIT, description="at most this many tracks per artist (0: no "
    "cap; null: the default for this kind of answer, chosen on validation)")]


class TextRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Annotated[str, StringConstraints(min_length=1, max_length=TEXT_MAX),
                    AfterValidator(clean_text), AfterValidator(not_blank),
                    Field(examples=["rainy day jazz", "신나는 여름 노래"])]
    k: K = 20
    max_per_artist: MaxPerArtist = None


class ContinueRequest(BaseModel):
    """Seeds, a name, or both: with seeds the ranker reads the name's evidence; a name alone
    (or with no seed the model knows) is answered by the text model."""

    model_config = ConfigDict(extra="forbid")
    track_ids: Annotated[list[TrackId], Field(max_length=SEEDS_MAX)] = Field(
        default_factory=list)
    name: Annotated[str, StringConstraints(min_length=1, max_length=TEXT_MAX),
                    AfterValidator(clean_text), AfterValidator(not_blank),
                    Field(examples=["road trip"])] | None = None
    k: K = 20
    max_per_artist: MaxPerArtist = None

    @model_validator(mode="after")
    def seeds_or_name(self) -> ContinueRequest:
        if not self.track_ids and self.name is None:
            raise ValueError("give track_ids, a name, or both")
        return self


class PlaylistOut(BaseModel):
    pid: str
    caption: str
    similarity: float


class TrackOut(BaseModel):
    track_id: str
    name: str | None
    artist: str | None
    score: float
    because: list[PlaylistOut] = Field(default_factory=list)


class TrackInfoOut(BaseModel):
    track_id: str
    name: str | None
    artist: str | None


class TextResponse(BaseModel):
    text: str
    model_version: str
    tracks: list[TrackOut]
    searched_as: str | None = Field(
        default=None, description="the text as searched when Korean loanwords in it were "
        "replaced by the English words the captions use (\"발라드\" -> \"ballad\"); null "
        "when nothing was replaced")
    confidence: float | None = Field(
        default=None, description="how likely the answer holds what a playlist with this "
        "caption holds (P(a track of it in the top 20), calibrated on validation captions); "
        "null when the text model has no calibration")
    match: Literal["close", "weak", "nothing"] | None = Field(
        default=None, description="\"close\"; \"weak\" (weak match: the captions are only "
        "loosely related); \"nothing\" (nothing close: noise, or words the model never saw; "
        "the tracks are the nearest anyway, not an answer); null without a calibration")


class ContinueResponse(BaseModel):
    model_version: str
    seeds: list[str]
    unknown_track_ids: list[str]
    tracks: list[TrackOut]
    method: str = Field(description="two-stage | embedding | text (a name, no known seed)")


class SimilarResponse(BaseModel):
    track_id: str
    model_version: str
    tracks: list[TrackOut]


class SearchResponse(BaseModel):
    q: str
    tracks: list[TrackInfoOut]
    near_misses: bool = Field(default=False, description=(
        "true when no track holds every word of q and the tracks are the closest names (a "
        "typo or two): no exact match"))


class HealthResponse(BaseModel):
    status: str


class ReadyResponse(BaseModel):
    ready: bool
    model_loaded: bool
    database: str  # "ok", "unreachable" or "not used" (exact backend)
    model_version: str | None
    backend: str
    text_model: bool
    # Why this process does not answer (it serves another model than the database holds).
    detail: str | None = None


class AdminResponse(BaseModel):
    model_version: str
    detail: dict[str, Any] = Field(default_factory=dict)


class UpdateRequest(BaseModel):
    """New playlists for `POST /v1/admin/update`, in the playlist JSON-lines interchange format
    (one object per playlist: pid, name, description, tags, tracks), with optional track
    records (track_id, track_name, artist, album, genres)."""

    playlists: list[dict[str, Any]] = Field(min_length=1)
    tracks: list[dict[str, Any]] = Field(default_factory=list)
    lenient: bool = False


class ExportRequest(BaseModel):
    """A playlist to export: its name and its tracks in order (ids, URIs or links)."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, StringConstraints(min_length=1, max_length=200),
                    AfterValidator(clean_text), AfterValidator(not_blank)] = "Dynplayer playlist"
    track_ids: Annotated[list[TrackId], Field(min_length=1, max_length=SEEDS_MAX)]
    format: Literal["m3u", "csv", "json"] = Field(
        default="m3u", description=f"one of {', '.join(FORMATS)}")


class ErrorResponse(BaseModel):
    error: str
    message: str


def tracks_out(tracks: list[TrackResult], because_limit: int = 10) -> list[TrackOut]:
    return [TrackOut(track_id=t.track_id, name=t.name, artist=t.artist, score=t.score,
                     because=[PlaylistOut(pid=b.pid, caption=b.caption,
                                          similarity=float(b.similarity))
                              for b in t.because[:because_limit]])
            for t in tracks]
