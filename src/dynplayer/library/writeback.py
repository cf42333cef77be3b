"""Write an answer back to the library's Subsonic server as a playlist, clearly Dynplayer's.

The playlist is named "Dynplayer: NAME" and its comment starts with "Made by Dynplayer". Saving
NAME again replaces the songs of that playlist only if it carries the mark and belongs to the
signed-in user; a playlist of that name without the mark is never touched (an error), and no
other playlist is ever read for writing. `dry_run` computes the change (create / update, songs
added and removed) and writes nothing. Everything is checked before the first write.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from dynplayer.errors import DynplayerError, QueryError
from dynplayer.library.store import Library

PREFIX = "Dynplayer: "
MARK = "Made by Dynplayer"
MAX_SONGS = 1000


@dataclass
class PlaylistChange:
    action: str  # create | update | unchanged
    name: str
    server: str
    songs: list[str]
    playlist_id: str | None = None
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    dry_run: bool = False
    written: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        where = f"{self.name!r} on {self.server}"
        if self.action == "unchanged":
            return f"{where}: already holds these {len(self.songs)} songs; nothing to change"
        verb = {"create": "create", "update": "update"}[self.action]
        done = "would " + verb if self.dry_run else verb + "d"
        extra = f" (+{len(self.added)} / -{len(self.removed)} songs)" \
            if self.action == "update" else ""
        return f"{done} playlist {where} with {len(self.songs)} songs{extra}"


def playlist_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise QueryError("the playlist name is empty")
    if len(name) > 200:
        raise QueryError("the playlist name is over 200 characters")
    return name if name.startswith(PREFIX) else PREFIX + name


def save_playlist(library: Library, name: str, song_ids: list[str], *, dry_run: bool = False,
                  credentials: Any = None) -> PlaylistChange:
    """Create or update the Dynplayer playlist NAME with `song_ids` (library ids, which are the
    server's song ids) on the server the library was imported from."""
    from dynplayer.library.subsonic import SubsonicClient, credentials_from_env

    url = library.source_url()
    if url is None:
        raise DynplayerError(f"the library {library.name!r} was not imported from a Subsonic "
                             "server, so there is no server to write a playlist to")
    if not song_ids:
        raise QueryError("no songs to write (the answer is empty)")
    if len(song_ids) > MAX_SONGS:
        raise QueryError(f"{len(song_ids)} songs; at most {MAX_SONGS} in a playlist")
    known = library.index()
    unknown = [s for s in song_ids if s not in known]
    if unknown:
        raise QueryError(f"{len(unknown)} ids are not songs of the library "
                         f"{library.name!r} (first: {unknown[0]!r})")
    full = playlist_name(name)
    creds = credentials or credentials_from_env()
    client = SubsonicClient(url, creds).connect()
    mark = (f"{MARK} from the library {library.name!r}; saving {full!r} again replaces "
            "its songs")
    heads = [h for h in client.playlist_heads() if h["name"] == full]
    user = getattr(creds, "user", None)
    ours = [h for h in heads if str(h.get("comment") or "").startswith(MARK)
            and (user is None or h.get("owner") in (None, user))]
    if heads and not ours:
        raise DynplayerError(f"{client.address.url}: a playlist named {full!r} exists that "
                             "Dynplayer did not make (no 'Made by Dynplayer' mark); it is left "
                             "alone: choose another name")
    if len(ours) > 1:
        raise DynplayerError(f"{client.address.url}: {len(ours)} Dynplayer playlists are named "
                             f"{full!r}; delete all but one on the server")
    change = PlaylistChange("create", full, client.address.url, list(song_ids),
                            dry_run=dry_run)
    if ours:
        pid = str(ours[0]["id"])
        current = client.playlist_songs(pid)
        change.playlist_id = pid
        change.added = [s for s in song_ids if s not in set(current)]
        change.removed = [s for s in current if s not in set(song_ids)]
        change.action = "unchanged" if current == list(song_ids) else "update"
    if dry_run or change.action == "unchanged":
        return change
    if change.action == "create":
        change.playlist_id = client.create_playlist(full, list(song_ids), mark)
    else:
        assert change.playlist_id is not None
        client.replace_playlist(change.playlist_id, list(song_ids), mark)
    change.written = True
    return change


__all__ = ["MARK", "PREFIX", "PlaylistChange", "playlist_name", "save_playlist"]
