"""Runtime settings from the environment (prefix DYNPLAYER_): database, data dir, serving knobs.

Built on demand by `Settings()`, never at import time, so tests and commands can pass their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from dynplayer.errors import ConfigError
from dynplayer.store.params import (
    EF_SEARCH_FACTOR,
    EF_SEARCH_MIN,
    EXACT_PLAYLISTS_MAX,
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    HNSW_TRACK_M,
)


class Settings(BaseSettings):
    """Everything the store and the service read at run time.

    DYNPLAYER_DATABASE_URL   an external PostgreSQL with pgvector; unset = the embedded server
    DYNPLAYER_DATA_DIR       where the embedded server keeps its data (default: user data dir)
    DYNPLAYER_RUN_DIR        the run the service loads
    DYNPLAYER_CATALOG        the catalog name that run is indexed and served as (unset: the
                             unnamed catalog in the public schema; the CLI names it after the run)
    DYNPLAYER_CATALOGS       several catalogs in one process, a JSON object {"name": "run dir"}
                             (the first is the default; replaces RUN_DIR and CATALOG)
    DYNPLAYER_ADMIN_TOKEN    enables POST /v1/admin/* with `Authorization: Bearer <token>`
    DYNPLAYER_CORS_ORIGINS   comma-separated origins allowed to call the API from a browser
    """

    model_config = SettingsConfigDict(env_prefix="DYNPLAYER_", extra="ignore")

    def __init__(self, **values: Any) -> None:
        # A bad DYNPLAYER_* variable is a one-line user error naming it, not a traceback.
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError("; ".join(_describe(e) for e in exc.errors())) from None

    database_url: str | None = None
    data_dir: Path | None = None
    run_dir: Path | None = None
    catalog: str | None = None
    catalogs: dict[str, Path] = Field(default_factory=dict)
    backend: Literal["pgvector", "exact"] = "pgvector"
    admin_token: str | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Index the run on startup when the database holds another version (or none).
    auto_index: bool = True
    pool_min_size: int = Field(default=2, ge=1)
    pool_max_size: int = Field(default=8, ge=1)
    # Seconds a request waits for a database connection before it fails with 503.
    pool_timeout: float = Field(default=1.0, gt=0)
    statement_timeout_ms: int = Field(default=2000, ge=1)
    hnsw_m: int = Field(default=HNSW_M, ge=2, le=100)  # the playlists' graph
    hnsw_track_m: int = Field(default=HNSW_TRACK_M, ge=2, le=100)  # the tracks' (store.params)
    hnsw_ef_construction: int = Field(default=HNSW_EF_CONSTRUCTION, ge=4, le=1000)
    # hnsw.ef_search = clamp(ef_search_factor * rows wanted, ef_search_min, 1000); the defaults
    # and their measurement are in dynplayer.store.db.
    ef_search_min: int = Field(default=EF_SEARCH_MIN, ge=1, le=1000)
    ef_search_factor: float = Field(default=EF_SEARCH_FACTOR, ge=1.0)
    # Catalogs with at most this many playlists answer text queries with an exact playlist
    # search in memory, as the exact backend and the CLI do (0 = always HNSW); see store.params.
    exact_playlists_max: int = Field(default=EXACT_PLAYLISTS_MAX, ge=0)
    # Top playlists a text query aggregates (the reference uses 50).
    text_playlists: int = Field(default=50, ge=1, le=1000)
    # Seconds between checks of the database's model version (0 = never): a process follows a
    # model that another process indexed (see `dynplayer.serve.app.Service`).
    version_poll: float = Field(default=2.0, ge=0)
    # Contributing playlists listed per track in a text answer (best first).
    because_limit: int = Field(default=10, ge=1, le=1000)
    # BLAS threads of an API process (0: numpy's default, a thread per core): requests run
    # side by side, and idle BLAS threads only spin (serve.app)
    blas_threads: int = Field(default=1, ge=0, le=256)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("catalog")
    @classmethod
    def _check_catalog(cls, value: str | None) -> str | None:
        from dynplayer.store.names import check_catalog_name

        return None if value is None else check_catalog_name(value)

    @field_validator("catalogs")
    @classmethod
    def _check_catalogs(cls, value: dict[str, Path]) -> dict[str, Path]:
        from dynplayer.store.names import check_catalog_name

        for name in value:
            check_catalog_name(name)
        return value

    def served_catalogs(self) -> list[tuple[str | None, Path | None]]:
        """(catalog name, run dir) of every catalog to serve, the default first: CATALOGS when
        set, else the one RUN_DIR as CATALOG (None: the unnamed catalog; no run dir: none)."""
        if self.catalogs:
            return [(name, Path(run)) for name, run in self.catalogs.items()]
        return [(self.catalog, self.run_dir)]

    def resolved_data_dir(self) -> Path:
        """The data directory: DYNPLAYER_DATA_DIR, else the platform's user data dir."""
        if self.data_dir is not None:
            return Path(self.data_dir).expanduser()
        return Path(platformdirs.user_data_dir("dynplayer"))


def _describe(error: Any) -> str:
    field = "_".join(map(str, error["loc"]))
    return (f"DYNPLAYER_{field.upper()}={error.get('input')!r} (setting {field}): "
            f"{error['msg']}")


class SettingsError(ConfigError, ValueError):
    """A setting (from the environment or given) that does not validate."""
