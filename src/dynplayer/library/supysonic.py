"""A real Subsonic server on this machine for the tests and the import benchmark: Debian's
Supysonic (0.7.2, API 1.10.2) under waitress, over a folder of tiny MP3 files written here.

`write_mp3` writes a valid MPEG-1 Layer III file of silent frames (no encoder needed) and tags
it with mutagen (ID3v2.4: artist, title, album, and optionally ISRC / MusicBrainz id).
`SupysonicServer` makes a private config, database and user, scans the folder with
`supysonic-cli`, and serves it on a free 127.0.0.1 port until `stop()`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from dynplayer.errors import DynplayerError

# MPEG-1 Layer III, 32 kbit/s, 32 kHz, mono, no CRC: header FF FB 18 C4, 144 x 32000 / 32000
# = 144 bytes a frame; zero side information and data decode as silence.
_FRAME = bytes([0xFF, 0xFB, 0x18, 0xC4]) + bytes(140)


def write_mp3(path: Path, artist: str, title: str, album: str | None = None, *,
              n_frames: int = 8, isrc: str | None = None, mbid: str | None = None) -> Path:
    """A tiny valid MP3 (about a quarter second of silence) tagged with mutagen."""
    from mutagen import id3

    frames: list[Any] = [id3.TPE1(encoding=3, text=artist),  # type: ignore[no-untyped-call]
                         id3.TIT2(encoding=3, text=title)]  # type: ignore[no-untyped-call]
    if album:
        frames.append(id3.TALB(encoding=3, text=album))  # type: ignore[no-untyped-call]
    if isrc:
        frames.append(id3.TSRC(encoding=3, text=isrc))  # type: ignore[no-untyped-call]
    if mbid:
        frames.append(id3.TXXX(encoding=3, desc="MusicBrainz Release Track Id",  # type: ignore[no-untyped-call]
                               text=mbid))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_FRAME * n_frames)
    tags: Any = id3.ID3()  # type: ignore[no-untyped-call]
    for frame in frames:
        tags.add(frame)
    tags.save(path)
    return path


def supysonic_available() -> str | None:
    """None when Supysonic and waitress are installed, else why not."""
    if shutil.which("supysonic-server") is None or shutil.which("supysonic-cli") is None:
        return "Supysonic is not installed (scripts/setup installs Debian's supysonic as root)"
    probe = subprocess.run(["/usr/bin/python3", "-c", "import waitress, supysonic"],
                           capture_output=True, check=False)
    if probe.returncode != 0:
        return "Supysonic or waitress cannot be imported by /usr/bin/python3"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SupysonicServer:
    """A Supysonic server over `music` (a folder), user `user` / `password`."""

    def __init__(self, root: Path, music: Path, *, user: str = "listener",
                 password: str = "s3cret-pass", admin: bool = False) -> None:
        self.root, self.music = Path(root), Path(music)
        self.user, self.password, self.admin = user, password, admin
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "supysonic.conf").write_text(
            "[base]\n"
            f"database_uri = sqlite:///{self.root / 'supysonic.db'}\n"
            "[webapp]\n"
            f"cache_dir = {self.root / 'cache'}\n"
            "log_level = WARNING\nmount_webui = no\n"
            "[daemon]\n"
            f"socket = {self.root / 'daemon.sock'}\nrun_watcher = no\n", encoding="utf-8")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _cli(self, *args: str, timeout: float = 1800) -> str:
        env = {**os.environ, "HOME": str(self.root)}
        try:
            res = subprocess.run(["supysonic-cli", *args], cwd=self.root, env=env,
                                 capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise DynplayerError(f"supysonic-cli {' '.join(args[:2])} did not finish within "
                                 f"{timeout:g} s") from None
        if res.returncode != 0:
            raise DynplayerError(f"supysonic-cli {' '.join(args[:2])} failed: "
                                 f"{(res.stderr or res.stdout).strip()[-300:]}")
        return res.stdout

    def setup(self) -> float:
        """Create the user and the folder and scan it; returns the scan's seconds."""
        self._cli("user", "add", self.user, "-p", self.password)
        if self.admin:
            self._cli("user", "setroles", "-A", self.user)
        self._cli("folder", "add", "music", str(self.music))
        t = time.perf_counter()
        self._cli("folder", "scan", "-f", "music")
        return time.perf_counter() - t

    def start(self, timeout: float = 60) -> str:
        """Serve on a free port; returns the URL once the API answers."""
        self.port = free_port()
        env = {**os.environ, "HOME": str(self.root)}
        log = (self.root / "server.log").open("wb")
        self.proc = subprocess.Popen(
            ["supysonic-server", "-S", "waitress", "-h", "127.0.0.1", "-p", str(self.port),
             "--threads", "4"], cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.root / "server.log").read_text(errors="replace")[-400:]
                raise DynplayerError(f"Supysonic exited at start ({self.proc.returncode}): "
                                     f"{tail}")
            try:
                with urllib.request.urlopen(f"{self.url}/rest/ping.view?f=json", timeout=2):
                    return self.url
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise DynplayerError(f"Supysonic did not answer on {self.url} within {timeout:g} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> SupysonicServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["SupysonicServer", "free_port", "supysonic_available", "write_mp3"]
