"""Errors a user can cause. The CLI prints them as one line and exits non-zero."""

from __future__ import annotations


class DynplayerError(Exception):
    """Base class for every error caused by user input or environment, not by a bug."""


class DataError(DynplayerError):
    """Malformed or unusable playlist data; names the file, the line or playlist, and the field."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        playlist: str | None = None,
        field: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.playlist = playlist
        self.field = field
        self.reason = message
        where = []
        if file is not None:
            where.append(file if line is None else f"{file}:{line}")
        if playlist is not None:
            where.append(f"playlist {playlist}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ConfigError(DynplayerError):
    """An unknown config key, a bad value, or an unreadable config file."""


class ArtifactError(DynplayerError):
    """A corpus or run directory that is missing, incomplete or of the wrong kind."""


class StoreError(DynplayerError):
    """The vector store (PostgreSQL + pgvector) is unreachable or misconfigured."""


class QueryError(DynplayerError):
    """A bad query: empty text, unknown track ids only, k out of range."""
