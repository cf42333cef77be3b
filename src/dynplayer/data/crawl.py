"""`dynplayer crawl`: collect playlists from the Spotify Web API into the JSON-lines format.

Client-credentials flow with the user's own app credentials. For each keyword the crawler pages
through playlist search results, then through each found playlist's items, and appends one
JSON line per finished playlist (plus new tracks to the companion track file). Progress lives in
a state file next to the output, so a rerun resumes where the last run stopped; the output
itself is the record of finished playlists, so a crash between the append and the state write
never duplicates a playlist. 429 answers wait for `Retry-After`; 5xx and network errors are
retried with bounded exponential backoff.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from dynplayer.errors import DynplayerError

DEFAULT_API_BASE = "https://api.spotify.com/v1"
DEFAULT_AUTH_URL = "https://accounts.spotify.com/api/token"
ENV_CLIENT_ID = "DYNPLAYER_SPOTIFY_CLIENT_ID"
ENV_CLIENT_SECRET = "DYNPLAYER_SPOTIFY_CLIENT_SECRET"
STATE_VERSION = 1
MAX_SEARCH_RESULTS = 1000  # the Web API refuses search offsets beyond this


class CrawlError(DynplayerError):
    """The API refused or kept failing; progress so far is saved and a rerun resumes."""


class NotAvailable(CrawlError):
    """404/403 for one resource (e.g. a playlist the app may not read): skip it, go on."""


@dataclass(frozen=True)
class CrawlConfig:
    """Where to crawl from and how patiently."""

    client_id: str
    client_secret: str
    api_base: str = DEFAULT_API_BASE
    auth_url: str = DEFAULT_AUTH_URL
    per_keyword: int = 100  # search results taken per keyword (the API serves at most 1,000)
    search_page: int = 50  # Spotify's maximum page size for search
    items_page: int = 100  # and for playlist items
    market: str | None = None
    max_retries: int = 5  # per request, for 5xx / network errors and for 429s
    backoff_s: float = 1.0  # first wait for 5xx; doubles each retry
    max_wait_s: float = 120.0  # a Retry-After longer than this stops the crawl (rerun later)
    timeout_s: float = 30.0


@dataclass
class CrawlState:
    """What is done and what is pending; saved atomically after every step."""

    keywords_done: list[str] = field(default_factory=list)
    search_offset: dict[str, int] = field(default_factory=dict)  # keyword -> next offset
    pending: list[dict[str, Any]] = field(default_factory=list)  # found, not yet fetched
    skipped: list[str] = field(default_factory=list)  # fetched but without usable tracks

    @classmethod
    def load(cls, path: Path) -> CrawlState:
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"version {data.get('version')!r}")
            return cls(
                keywords_done=list(data["keywords_done"]),
                search_offset={str(k): int(v) for k, v in data["search_offset"].items()},
                pending=list(data["pending"]),
                skipped=list(data["skipped"]),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CrawlError(f"{path}: unreadable crawl state ({exc}); delete it to start "
                             "over") from exc

    def save(self, path: Path) -> None:
        data = {"version": STATE_VERSION, "keywords_done": self.keywords_done,
                "search_offset": self.search_offset, "pending": self.pending,
                "skipped": self.skipped}
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)


@dataclass
class CrawlSummary:
    playlists_written: int = 0
    tracks_written: int = 0
    playlists_skipped: int = 0
    requests: int = 0
    rate_limited: int = 0
    retried: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def state_path_for(out: Path) -> Path:
    return out.with_name(out.name + ".state.json")


def tracks_path_for(out: Path) -> Path:
    """Default companion track file: `playlists.jsonl` -> `playlists.tracks.jsonl`."""
    name = out.name
    for suffix in (".jsonl", ".ndjson"):
        if name.endswith(suffix):
            return out.with_name(name[: -len(suffix)] + ".tracks" + suffix)
    return out.with_name(name + ".tracks.jsonl")


def read_keywords(values: Iterable[str], files: Iterable[Path]) -> list[str]:
    """Keywords from options and files (one per line, `#` comments), de-duplicated in order."""
    out: list[str] = []
    for f in files:
        try:
            text = Path(f).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CrawlError(f"{f}: cannot read keyword file ({exc})") from exc
        out += [ln.strip() for ln in text.splitlines() if ln.strip() and not
                ln.strip().startswith("#")]
    out += [v.strip() for v in values if v.strip()]
    seen: set[str] = set()
    uniq = [k for k in out if not (k in seen or seen.add(k))]  # type: ignore[func-returns-value]
    if not uniq:
        raise CrawlError("no keywords given (use --keyword or --keywords-file)")
    return uniq


def credentials(client_id: str | None, client_secret: str | None) -> tuple[str, str]:
    cid = client_id or os.environ.get(ENV_CLIENT_ID, "")
    secret = client_secret or os.environ.get(ENV_CLIENT_SECRET, "")
    if not cid or not secret:
        raise CrawlError(f"Spotify client credentials missing: pass --client-id/--client-secret "
                         f"or set {ENV_CLIENT_ID} and {ENV_CLIENT_SECRET}")
    return cid, secret


def _scan_output(path: Path, key: str) -> set[str]:
    """Ids already in a JSON-lines output; a torn last line (crash mid-write) is cut off."""
    if not path.exists():
        return set()
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        cut = raw.rfind(b"\n") + 1
        with open(path, "r+b") as fh:
            fh.truncate(cut)
        raw = raw[:cut]
    ids: set[str] = set()
    for n, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            ids.add(str(json.loads(line)[key]))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CrawlError(f"{path}:{n}: not a crawl output line ({exc}); use a new --out"
                             ) from exc
    return ids


def _append_line(path: Path, record: dict[str, Any]) -> None:
    """One whole line per write, flushed and synced, so a crash leaves at most a torn tail."""
    data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    with open(path, "ab") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


class SpotifyClient:
    """Token handling, retries and rate limits around GET requests to the Web API."""

    def __init__(self, cfg: CrawlConfig, summary: CrawlSummary,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.cfg = cfg
        self.summary = summary
        self.sleep = sleep
        self.http = httpx.Client(timeout=cfg.timeout_s)
        self._token: str | None = None
        self._token_expiry = 0.0

    def close(self) -> None:
        self.http.close()

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send with retries: 429 waits Retry-After, 5xx/network errors back off exponentially."""
        attempt = 0
        while True:
            self.summary.requests += 1
            wait = self.cfg.backoff_s * 2**attempt
            try:
                resp = self.http.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                problem = f"network error ({exc.__class__.__name__})"
                self.summary.retried += 1
            else:
                if resp.status_code == 429:
                    self.summary.rate_limited += 1
                    wait = _retry_after(resp, wait)
                    if wait > self.cfg.max_wait_s:
                        raise CrawlError(f"rate limited by {url.split('?')[0]} for {wait:.0f} s; "
                                         "progress is saved, rerun later to resume")
                    problem = "rate limited (429)"
                elif resp.status_code >= 500:
                    problem = f"server error {resp.status_code}"
                    self.summary.retried += 1
                else:
                    return resp
            if attempt >= self.cfg.max_retries:
                raise CrawlError(f"{url.split('?')[0]}: {problem}, gave up after "
                                 f"{self.cfg.max_retries} retries; progress is saved, rerun to "
                                 "resume")
            self.sleep(wait)
            attempt += 1

    def token(self, *, refresh: bool = False) -> str:
        if self._token and not refresh and time.monotonic() < self._token_expiry:
            return self._token
        resp = self._request("POST", self.cfg.auth_url, data={"grant_type": "client_credentials"},
                             auth=(self.cfg.client_id, self.cfg.client_secret))
        if resp.status_code in (400, 401, 403):
            raise CrawlError(f"Spotify refused the client credentials ({resp.status_code}: "
                             f"{_error_text(resp)})")
        if resp.status_code != 200:
            raise CrawlError(f"token request failed with {resp.status_code}: {_error_text(resp)}")
        try:
            body = resp.json()
            token = str(body["access_token"])
            expires = float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError) as exc:
            raise CrawlError(f"token response not understood ({exc})") from exc
        self._token = token
        self._token_expiry = time.monotonic() + max(0.0, expires - 60)
        return token

    def get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        """GET `api_base + path` as JSON; refreshes an expired token once."""
        url = self.cfg.api_base.rstrip("/") + path
        for refreshed in (False, True):
            headers = {"Authorization": f"Bearer {self.token(refresh=refreshed)}"}
            resp = self._request("GET", url, params=params, headers=headers)
            if resp.status_code == 401 and not refreshed:
                continue
            if resp.status_code in (403, 404):
                raise NotAvailable(f"{path}: HTTP {resp.status_code} ({_error_text(resp)})")
            if resp.status_code != 200:
                raise CrawlError(f"{path}: HTTP {resp.status_code} ({_error_text(resp)})")
            try:
                body = resp.json()
            except ValueError as exc:
                raise CrawlError(f"{path}: response is not JSON") from exc
            if not isinstance(body, dict):
                raise CrawlError(f"{path}: unexpected response (not a JSON object)")
            return body
        raise AssertionError("unreachable")


def _retry_after(resp: httpx.Response, default: float) -> float:
    value = resp.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:
        return default


def _error_text(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            return str(err.get("message", err))
        if err:
            return str(body.get("error_description", err))
    except ValueError:
        pass
    return resp.text[:200].replace("\n", " ") or resp.reason_phrase


def _track_record(item: Any) -> dict[str, Any] | None:
    """The interchange track record for a playlist item, or None (episode, local, removed)."""
    if not isinstance(item, dict):
        return None
    t = item.get("track")
    if not isinstance(t, dict) or t.get("type", "track") != "track" or t.get("is_local"):
        return None
    tid = t.get("id")
    if not isinstance(tid, str) or not tid:
        return None
    artists = t.get("artists") or []
    artist = artists[0].get("name") if artists and isinstance(artists[0], dict) else None
    album_rec = t.get("album")
    album = album_rec.get("name") if isinstance(album_rec, dict) else None
    return {"track_id": tid, "track_name": t.get("name"), "artist": artist, "album": album,
            "genres": None}


def crawl(
    keywords: list[str],
    out: Path,
    cfg: CrawlConfig,
    *,
    tracks_out: Path | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[str], None] | None = None,
) -> CrawlSummary:
    """Crawl playlists for `keywords` into `out` (JSON lines), resuming from its state file."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tracks_out = Path(tracks_out) if tracks_out is not None else tracks_path_for(out)
    state_file = state_path_for(out)
    state = CrawlState.load(state_file)
    done = _scan_output(out, "pid")
    known_tracks = _scan_output(tracks_out, "track_id")
    summary = CrawlSummary()
    client = SpotifyClient(cfg, summary, sleep=sleep)
    say = progress or (lambda _msg: None)
    try:
        for kw in keywords:
            if kw not in state.keywords_done:
                _search(client, kw, state, state_file, done, cfg)
                state.keywords_done.append(kw)
                state.search_offset.pop(kw, None)
                state.save(state_file)
                say(f"{kw!r}: {len(state.pending)} playlists to fetch")
            while state.pending:
                meta = state.pending[0]
                pid = str(meta["id"])
                if pid not in done and pid not in state.skipped:
                    n = _fetch_playlist(client, meta, out, tracks_out, known_tracks, cfg,
                                        summary)
                    if n:
                        done.add(pid)
                        summary.playlists_written += 1
                        summary.tracks_written += n
                    else:
                        state.skipped.append(pid)
                        summary.playlists_skipped += 1
                state.pending.pop(0)
                state.save(state_file)
            say(f"{kw!r}: done ({summary.playlists_written} playlists written so far)")
    finally:
        client.close()
    return summary


def _search(client: SpotifyClient, kw: str, state: CrawlState, state_file: Path,
            done: set[str], cfg: CrawlConfig) -> None:
    offset = state.search_offset.get(kw, 0)
    queued = {str(p["id"]) for p in state.pending}
    wanted = min(cfg.per_keyword, MAX_SEARCH_RESULTS)
    while offset < wanted:
        params: dict[str, Any] = {"q": kw, "type": "playlist", "offset": offset,
                                  "limit": min(cfg.search_page, wanted - offset)}
        if cfg.market:
            params["market"] = cfg.market
        body = client.get("/search", params)
        page = body.get("playlists")
        if not isinstance(page, dict) or not isinstance(page.get("items"), list):
            raise CrawlError(f"/search for {kw!r}: response has no playlists.items")
        items = page["items"]
        for it in items:  # Spotify returns null entries for playlists it cannot show
            if not isinstance(it, dict) or not isinstance(it.get("id"), str):
                continue
            pid = it["id"]
            if pid in done or pid in queued or pid in state.skipped:
                continue
            queued.add(pid)
            state.pending.append({"id": pid, "name": it.get("name") or "",
                                  "description": it.get("description") or None,
                                  "keyword": kw})
        offset += len(items)
        state.search_offset[kw] = offset
        state.save(state_file)
        if not items or not page.get("next"):
            break


def _fetch_playlist(client: SpotifyClient, meta: dict[str, Any], out: Path, tracks_out: Path,
                    known_tracks: set[str], cfg: CrawlConfig, summary: CrawlSummary) -> int:
    """Fetch every page of one playlist's items, then append it; returns its track count."""
    pid = str(meta["id"])
    records: list[dict[str, Any]] = []
    offset = 0
    while True:
        params: dict[str, Any] = {"offset": offset, "limit": cfg.items_page,
                                  "additional_types": "track"}
        if cfg.market:
            params["market"] = cfg.market
        try:
            body = client.get(f"/playlists/{pid}/tracks", params)
        except NotAvailable:
            # Spotify answers 404 for playlists a client-credentials app may not read (its own
            # editorial ones, since 2024): skip the playlist rather than stop the crawl.
            return 0
        items = body.get("items")
        if not isinstance(items, list):
            raise CrawlError(f"/playlists/{pid}/tracks: response has no items")
        for it in items:
            rec = _track_record(it)
            if rec is not None:
                records.append(rec)
        offset += len(items)
        if not items or not body.get("next"):
            break
    if not records:
        return 0
    for rec in records:
        if rec["track_id"] not in known_tracks:
            _append_line(tracks_out, rec)
            known_tracks.add(rec["track_id"])
    # The search keyword is kept as an extra field (readers ignore it), not as a tag: it is
    # not the playlist owner's words and would leak into captions.
    _append_line(out, {"pid": pid, "name": meta.get("name") or "",
                       "description": meta.get("description"), "tags": [],
                       "tracks": [r["track_id"] for r in records],
                       "keyword": meta.get("keyword")})
    return len(records)
