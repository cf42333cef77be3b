"""A Subsonic / OpenSubsonic server as a library source and as the place mixes are written back.

Built on py-sonic (a maintained client that returns the server's answers as they are, so the
optional fields servers differ in never break it: py-opensonic's typed playlists fail on
Supysonic 0.7.2, whose playlists lack `changed`). A small subclass adds what py-sonic lacks: the
OpenSubsonic `apiKey` parameter and a timeout on every request. The handshake (`getLicense`)
checks the credentials and the server's API version (1.8.0 or later: `search3`,
`updatePlaylist`); token authentication is tried first and the pre-1.13 password form
(`p=enc:...`, in the POST body, never the URL) only when the server does not take tokens
(Supysonic). The whole library is read with `search3` and an empty query, 500 songs a page, a
few pages at once; a server that answers an empty query with nothing is walked album by album.

Credentials come from DYNPLAYER_SUBSONIC_USER / _PASSWORD (or _API_KEY), else a prompt on a
terminal; they are never stored, logged or put in an error message.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import libsonic

from dynplayer.errors import DynplayerError
from dynplayer.library.records import LibraryPlaylist, LibraryTrack

MIN_API = (1, 8, 0)
PAGE = 500
PARALLEL_PAGES = 4
API_VERSION = "1.16.1"  # sent as the client's version; servers answer with theirs
TIMEOUT_S = 20.0
ENV_USER, ENV_PASSWORD, ENV_KEY = ("DYNPLAYER_SUBSONIC_USER", "DYNPLAYER_SUBSONIC_PASSWORD",
                                   "DYNPLAYER_SUBSONIC_API_KEY")
T = TypeVar("T")


class SubsonicError(DynplayerError):
    """The server cannot be used: unreachable, wrong credentials, too old, or refused."""


@dataclass(frozen=True)
class Credentials:
    user: str | None = field(default=None)
    password: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)

    def secrets(self) -> list[str]:
        out = [s for s in (self.password, self.api_key) if s]
        return out + [s.encode().hex() for s in out] + [s.encode().hex().upper() for s in out]


def credentials_from_env(prompt: bool = True) -> Credentials:
    """DYNPLAYER_SUBSONIC_API_KEY, or DYNPLAYER_SUBSONIC_USER + _PASSWORD; on a terminal the
    missing user name or password is asked for (the password without echo)."""
    key = os.environ.get(ENV_KEY) or None
    if key:
        return Credentials(api_key=key)
    user = os.environ.get(ENV_USER) or None
    password = os.environ.get(ENV_PASSWORD) or None
    if prompt and sys.stdin.isatty() and (user is None or password is None):
        import getpass

        user = user or input("Subsonic user: ").strip() or None
        password = password or getpass.getpass("Subsonic password: ") or None
    if not user or not password:
        raise SubsonicError(f"no credentials for the Subsonic server: set {ENV_USER} and "
                            f"{ENV_PASSWORD} (or {ENV_KEY}) in the environment")
    return Credentials(user=user, password=password)


@dataclass(frozen=True)
class ServerAddress:
    base: str  # scheme://host
    port: int
    path: str  # the server's root path ("" or e.g. "music"); the API is under PATH/rest

    @property
    def url(self) -> str:
        """The address as a person writes it (no credentials: none are ever in it)."""
        return f"{self.base}:{self.port}" + (f"/{self.path}" if self.path else "")


def parse_server_url(url: str) -> ServerAddress:
    """`http(s)://host[:port][/path]` (a trailing `/rest` is the API's own path and dropped)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SubsonicError(f"{url!r} is not a server URL (http://host:port)")
    if parts.username or parts.password:
        raise SubsonicError(f"the server URL must not hold credentials; set {ENV_USER} and "
                            f"{ENV_PASSWORD} in the environment instead")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise SubsonicError(f"bad port in the server URL ({exc})") from exc
    # The server's root path; the client adds the REST path ("/rest") itself.
    path = parts.path.strip("/").removesuffix("rest").strip("/")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return ServerAddress(f"{parts.scheme}://{host}", port, path)


def _version(text: Any) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in str(text).split(".")[:3])
    except ValueError:
        return (0,)


class _Opener:
    """urllib's opener with a timeout on every request (py-sonic sets none)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.inner = urllib.request.build_opener()

    def open(self, req: Any) -> Any:
        return self.inner.open(req, timeout=self.timeout)


class _Connection(libsonic.Connection):  # type: ignore[misc]
    """py-sonic's connection, plus the OpenSubsonic API key and a request timeout."""

    def __init__(self, *args: Any, api_key: str | None = None, timeout: float = TIMEOUT_S,
                 **kwargs: Any) -> None:
        self._apiKey = api_key
        self._timeout_s = timeout
        super().__init__(*args, **kwargs)

    def _getOpener(self, username: Any, passwd: Any) -> _Opener:  # noqa: N802 (py-sonic's)
        return _Opener(getattr(self, "_timeout_s", TIMEOUT_S))

    def _getBaseQdict(self) -> dict[str, Any]:  # noqa: N802 (py-sonic's name)
        if self._apiKey:
            return {"f": "json", "v": self._apiVersion, "c": self._appName,
                    "apiKey": self._apiKey}
        out: dict[str, Any] = super()._getBaseQdict()
        return out


class SubsonicClient:
    """One server and one set of credentials; `connect()` first."""

    def __init__(self, url: str, credentials: Credentials, *, timeout: float = TIMEOUT_S):
        self.address = parse_server_url(url)
        self.credentials = credentials
        self.timeout = timeout
        self.legacy = False
        self.api_version: str | None = None
        self.open_subsonic = False
        self.server_type: str | None = None

    # ---- plumbing --------------------------------------------------------------------------
    def _connection(self) -> _Connection:
        c = self.credentials
        return _Connection(self.address.base, c.user or "", c.password or "",
                           port=self.address.port,
                           serverPath=(f"{self.address.path}/rest" if self.address.path
                                       else "rest"),
                           appName="dynplayer", apiVersion=API_VERSION,
                           legacyAuth=self.legacy, api_key=c.api_key, timeout=self.timeout)

    def _scrub(self, text: str) -> str:
        for secret in self.credentials.secrets():
            text = text.replace(secret, "***")
        return text

    def call(self, work: Callable[[_Connection], T]) -> T:
        """`work(connection)`, its failures as one-line SubsonicErrors naming the server (never
        a credential)."""
        import json

        where = self.address.url
        try:
            return work(self._connection())
        except libsonic.errors.CredentialError:
            raise SubsonicError(f"{where}: wrong user name or password (Subsonic error 40)"
                                ) from None
        except libsonic.errors.VersionError:
            raise SubsonicError(f"{where}: the server's Subsonic API is too old (Dynplayer "
                                f"needs {'.'.join(map(str, MIN_API))} or later)") from None
        except libsonic.errors.AuthError:
            raise SubsonicError(f"{where}: this user may not do that (Subsonic error 50)"
                                ) from None
        except libsonic.errors.SonicError as exc:
            raise SubsonicError(f"{where}: the server refused: {self._scrub(str(exc))}"
                                ) from None
        except urllib.error.HTTPError as exc:
            raise SubsonicError(f"{where}: not a Subsonic API (HTTP {exc.code} "
                                f"{self._scrub(str(exc.reason))})") from None
        except TimeoutError:
            raise SubsonicError(f"{where}: the server did not answer within "
                                f"{self.timeout:g} s") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise SubsonicError(f"{where}: cannot reach the server "
                                f"({self._scrub(str(reason))})") from None
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError,
                AttributeError):
            raise SubsonicError(f"{where}: not a Subsonic API (the answer is not a Subsonic "
                                "JSON response)") from None

    # ---- the handshake ---------------------------------------------------------------------
    def connect(self) -> SubsonicClient:
        """Check the credentials and the API version; falls back to the pre-1.13 password
        form when the server does not take tokens. Returns self."""

        def license_(conn: _Connection) -> dict[str, Any]:
            try:
                out: dict[str, Any] = conn.getLicense()
                return out
            except libsonic.errors.ParameterError:
                return {"retry": True}  # error 10: no token auth (Supysonic)
            except libsonic.errors.SonicError as exc:
                if "token" in str(exc).lower():  # error 41 / 42
                    return {"retry": True}
                raise

        answer = self.call(license_)
        if answer.get("retry") and self.credentials.api_key is None:
            self.legacy = True
            answer = self.call(license_)
        if answer.get("retry"):
            raise SubsonicError(f"{self.address.url}: the server rejects this way of signing "
                                "in (it wants a user name and password, or an API key)")
        self.api_version = str(answer.get("version", "0"))
        self.open_subsonic = bool(answer.get("openSubsonic"))
        self.server_type = answer.get("type")
        if _version(self.api_version) < MIN_API:
            raise SubsonicError(f"{self.address.url}: the server speaks Subsonic API "
                                f"{self.api_version}; Dynplayer needs "
                                f"{'.'.join(map(str, MIN_API))} or later")
        return self

    # ---- reading ---------------------------------------------------------------------------
    def songs(self) -> list[LibraryTrack]:
        """Every song of the library (search3 with an empty query, else album by album)."""

        def page(offset: int) -> list[dict[str, Any]]:
            res = self.call(lambda c: c.search3("", artistCount=0, albumCount=0,
                                                songCount=PAGE, songOffset=offset))
            return _as_list(res.get("searchResult3", {}).get("song"))

        found: list[dict[str, Any]] = []
        with ThreadPoolExecutor(PARALLEL_PAGES) as pool:
            offset = 0
            while True:
                batch = list(pool.map(page, range(offset, offset + PARALLEL_PAGES * PAGE,
                                                  PAGE)))
                for songs in batch:
                    found.extend(songs)
                if any(len(songs) < PAGE for songs in batch):
                    break
                offset += PARALLEL_PAGES * PAGE
            if not found:
                found = self._album_walk(pool)
        out: dict[str, LibraryTrack] = {}
        for s in found:
            sid = str(s.get("id", ""))
            if s.get("isDir") or not sid or sid in out:
                continue
            isrc = s.get("isrc")
            out[sid] = LibraryTrack(
                id=sid, artist=str(s.get("artist") or "").strip(),
                title=str(s.get("title") or "").strip(), album=s.get("album") or None,
                isrc=(isrc[0] if isinstance(isrc, list) and isrc
                      else isrc if isinstance(isrc, str) else None),
                mbid=s.get("musicBrainzId") or None)
        return [t for t in out.values() if t.artist and t.title]

    def _album_walk(self, pool: ThreadPoolExecutor) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        offset = 0
        while True:
            res = self._album_page(offset)
            ids = [a["id"] for a in _as_list(res.get("albumList2", {}).get("album"))]
            for album in pool.map(self._album, ids):
                found.extend(_as_list(album.get("album", {}).get("song")))
            if len(ids) < PAGE:
                return found
            offset += PAGE

    def _album_page(self, offset: int) -> dict[str, Any]:
        out: dict[str, Any] = self.call(lambda c: c.getAlbumList2("alphabeticalByName",
                                                                  size=PAGE, offset=offset))
        return out

    def _album(self, album_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self.call(lambda c: c.getAlbum(album_id))
        return out

    def playlist_heads(self) -> list[dict[str, Any]]:
        """id, name, comment, owner and song count of every playlist listed for the user."""
        res = self.call(lambda c: c.getPlaylists())
        return [{"id": str(p.get("id")), "name": str(p.get("name") or ""),
                 "comment": p.get("comment"), "owner": p.get("owner"),
                 "songs": int(p.get("songCount") or 0)}
                for p in _as_list(res.get("playlists", {}).get("playlist"))]

    def playlist_songs(self, playlist_id: str) -> list[str]:
        res = self.call(lambda c: c.getPlaylist(playlist_id))
        return [str(e.get("id")) for e in _as_list(res.get("playlist", {}).get("entry"))]

    def playlists(self) -> list[LibraryPlaylist]:
        """The user's playlists with their songs."""
        heads = self.playlist_heads()
        with ThreadPoolExecutor(PARALLEL_PAGES) as pool:
            songs = list(pool.map(lambda h: self.playlist_songs(h["id"]), heads))
        return [LibraryPlaylist(id=h["id"], name=h["name"], tracks=s, comment=h["comment"])
                for h, s in zip(heads, songs, strict=True)]

    # ---- writing ---------------------------------------------------------------------------
    def create_playlist(self, name: str, song_ids: list[str], comment: str) -> str:
        """Create the playlist, mark it with `comment`, return its id."""
        before = {h["id"] for h in self.playlist_heads()}
        self.call(lambda c: c.createPlaylist(name=name, songIds=song_ids))
        made = [h for h in self.playlist_heads() if h["id"] not in before and h["name"] == name]
        if len(made) != 1:
            raise SubsonicError(f"{self.address.url}: created playlist {name!r} but cannot "
                                "find it in the server's list")
        pid = str(made[0]["id"])
        self.call(lambda c: c.updatePlaylist(pid, comment=comment))
        return pid

    def replace_playlist(self, playlist_id: str, song_ids: list[str], comment: str) -> None:
        """Replace the playlist's songs in one call, then renew its mark."""
        self.call(lambda c: c.createPlaylist(playlistId=playlist_id, songIds=song_ids))
        self.call(lambda c: c.updatePlaylist(playlist_id, comment=comment))


def _as_list(value: Any) -> list[Any]:
    """A Subsonic JSON field that is a list, one object (some servers), or absent."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


__all__ = ["ENV_KEY", "ENV_PASSWORD", "ENV_USER", "MIN_API", "Credentials", "ServerAddress",
           "SubsonicClient", "SubsonicError", "credentials_from_env", "parse_server_url"]
