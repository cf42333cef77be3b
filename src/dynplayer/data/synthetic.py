"""A synthetic playlist corpus with planted structure, for tests and for the demo without data.

Each track belongs to one genre and one mood; artists belong to one genre. A playlist picks a
(genre, mood) pair, and draws its tracks from that genre with Zipf popularity, preferring the
mood, with a little noise from other genres. Captions are built from genre and mood words, so a
text model can learn them; artists carry their genre, so the genre probe has labels.
Generation is vectorised, so a corpus at full MPD scale (1M playlists) is made in seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dynplayer.data.corpus import Corpus
from dynplayer.errors import ConfigError

GENRES = [
    ("jazz", ["jazz", "smooth jazz", "bebop"]),
    ("rock", ["rock", "classic rock", "guitar"]),
    ("hip hop", ["hip hop", "rap", "beats"]),
    ("classical", ["classical", "piano", "orchestra"]),
    ("country", ["country", "nashville", "banjo"]),
    ("edm", ["edm", "electronic", "dance"]),
    ("k-pop", ["k-pop", "케이팝", "아이돌"]),
    ("metal", ["metal", "heavy", "thrash"]),
    ("reggae", ["reggae", "island", "dub"]),
    ("folk", ["folk", "acoustic", "singer songwriter"]),
    ("r&b", ["r&b", "soul", "slow jams"]),
    ("latin", ["latin", "reggaeton", "salsa"]),
]
MOODS = [
    ("chill", ["chill", "relax", "rainy day", "잔잔한"]),
    ("party", ["party", "hype", "summer", "신나는"]),
    ("workout", ["workout", "gym", "running", "운동"]),
    ("sad", ["sad", "heartbreak", "lonely", "슬픈"]),
]


@dataclass(frozen=True)
class SyntheticSpec:
    n_playlists: int = 2000
    n_tracks: int = 3000
    n_genres: int = 8
    n_moods: int = 4
    mean_length: float = 30.0
    zipf_a: float = 1.1
    noise: float = 0.05  # share of tracks drawn from any genre
    mood_affinity: float = 0.8  # share of in-genre tracks drawn from the playlist's mood
    artists_per_genre: int = 20
    seed: int = 0


def check_spec(spec: SyntheticSpec) -> None:
    """One-line errors for sizes the generator cannot make (each planted (genre, mood) cell needs
    a track, and a playlist needs a positive mean length)."""
    cells = min(spec.n_genres, len(GENRES)) * min(spec.n_moods, len(MOODS))
    problems = []
    if spec.n_playlists < 1:
        problems.append(f"--playlists must be >= 1 (got {spec.n_playlists})")
    if spec.n_tracks < cells:
        problems.append(f"--tracks must be >= {cells}, one per planted genre x mood cell "
                        f"(got {spec.n_tracks})")
    if not 0 < spec.mean_length <= 10_000:
        problems.append(f"--mean-length must be in (0, 10000] (got {spec.mean_length:g})")
    if spec.n_genres < 1 or spec.n_moods < 1:
        problems.append("n_genres and n_moods must be >= 1")
    if problems:
        raise ConfigError("synthetic corpus: " + "; ".join(problems))


def generate(spec: SyntheticSpec) -> Corpus:
    """Build the synthetic corpus (no selection or split yet)."""
    check_spec(spec)
    rng = np.random.default_rng(spec.seed)
    g_n = min(spec.n_genres, len(GENRES))
    m_n = min(spec.n_moods, len(MOODS))
    t_n = spec.n_tracks
    track_genre = np.arange(t_n) % g_n
    track_mood = (np.arange(t_n) // g_n) % m_n
    # Tracks of each (genre, mood) cell ordered by a Zipf rank: popular first.
    cell = track_genre * m_n + track_mood
    cell_members = [np.flatnonzero(cell == c) for c in range(g_n * m_n)]
    genre_members = [np.flatnonzero(track_genre == g) for g in range(g_n)]

    def zipf_pick(members: list[np.ndarray], which: np.ndarray) -> np.ndarray:
        out = np.empty(which.shape[0], dtype=np.int32)
        sizes = np.array([m.shape[0] for m in members])
        # Group positions by cell with one stable sort (not one pass per cell); cells are
        # visited in ascending order, so the random stream is the same as before.
        order = np.argsort(which, kind="stable")
        per_cell = np.bincount(which, minlength=len(members))
        ends = np.cumsum(per_cell)
        for c in np.flatnonzero(per_cell):
            sel = order[ends[c] - per_cell[c]:ends[c]]
            size = sizes[c]
            w = 1.0 / np.arange(1, size + 1) ** spec.zipf_a
            ranks = rng.choice(size, size=sel.shape[0], p=w / w.sum())
            out[sel] = members[c][ranks]
        return out

    p_n = spec.n_playlists
    pl_genre = rng.integers(0, g_n, p_n)
    pl_mood = rng.integers(0, m_n, p_n)
    lengths = np.clip(rng.poisson(spec.mean_length, p_n), 5, None)
    occ_playlist = np.repeat(np.arange(p_n, dtype=np.int32), lengths)
    n_occ = occ_playlist.shape[0]
    # Small integer types and early `del`s keep a 66M-occurrence corpus within a few GB.
    g = pl_genre.astype(np.int16)[occ_playlist]
    m = pl_mood.astype(np.int16)[occ_playlist]
    noise = rng.random(n_occ) < spec.noise
    tracks = np.empty(n_occ, dtype=np.int32)
    in_mood = rng.random(n_occ) < spec.mood_affinity
    in_mood &= ~noise
    genre_only = ~noise & ~in_mood
    tracks[noise] = rng.integers(0, t_n, int(noise.sum()))
    del noise
    tracks[in_mood] = zipf_pick(cell_members, (g[in_mood] * m_n + m[in_mood]).astype(np.int64))
    del in_mood, m
    tracks[genre_only] = zipf_pick(genre_members, g[genre_only].astype(np.int64))
    del genre_only, g
    starts = np.r_[0, np.cumsum(lengths)[:-1]].astype(np.int32)
    occ_position = np.arange(n_occ, dtype=np.int32) - np.repeat(starts, lengths)

    used = np.zeros(t_n, dtype=bool)
    used[tracks] = True
    remap = np.cumsum(used) - 1
    kept = np.flatnonzero(used)
    occ_track = remap[tracks].astype(np.int32)

    pl_genre_list, pl_mood_list = pl_genre.tolist(), pl_mood.tolist()
    integers, random = rng.integers, rng.random

    def caption(i: int) -> tuple[str, str, list[str]]:
        gw = GENRES[pl_genre_list[i]][1]
        mw = MOODS[pl_mood_list[i]][1]
        a = gw[int(integers(len(gw)))]
        b = mw[int(integers(len(mw)))]
        name = f"{b} {a}" if random() < 0.5 else f"{a} {b}"
        return name, "", [GENRES[pl_genre_list[i]][0], MOODS[pl_mood_list[i]][0]]

    names, descs, tags = [], [""] * p_n, []
    for i in range(p_n):
        n_, _, t_ = caption(i)
        names.append(n_)
        tags.append(t_)
    artist_of = kept % (g_n * spec.artists_per_genre)  # artist k belongs to genre k % g_n
    kept_list = kept.tolist()
    cell_label = [f"{GENRES[c // m_n][0]}, {MOODS[c % m_n][0]}" for c in range(g_n * m_n)]
    return Corpus(
        pids=[f"syn{i}" for i in range(p_n)],
        names=names,
        descriptions=descs,
        tags=tags,
        sources=["synthetic"] * p_n,
        occ_playlist=occ_playlist,
        occ_position=occ_position,
        occ_track=occ_track,
        track_ids=[f"t{t:07d}" for t in kept_list],
        track_names=[f"Track {t} ({cell_label[c]})"
                     for t, c in zip(kept_list, cell[kept].tolist(), strict=True)],
        artists=[f"Artist {a}" for a in artist_of.tolist()],
        albums=[None] * kept.shape[0],
        track_genres=[[GENRES[gi][0]] for gi in track_genre[kept].tolist()],
        manifest={"synthetic": {"spec": spec.__dict__,
                                "track_genre": track_genre[kept].tolist()
                                if kept.shape[0] <= 200_000 else None,
                                "track_mood": track_mood[kept].tolist()
                                if kept.shape[0] <= 200_000 else None}},
    )


def planted_groups(corpus: Corpus) -> np.ndarray:
    """(genre, mood) cell per track of a synthetic corpus (from its manifest)."""
    syn = corpus.manifest["synthetic"]
    g = np.asarray(syn["track_genre"])
    m = np.asarray(syn["track_mood"])
    return g * int(syn["spec"]["n_moods"]) + m


def write_jsonl(corpus: Corpus, playlists_path: Path, tracks_path: Path | None = None) -> None:
    """Write a corpus in the JSON-lines interchange format (and its companion track file)."""
    indptr = corpus.playlist_indptr
    with open(playlists_path, "w", encoding="utf-8") as fh:
        for p in range(corpus.n_playlists):
            tids = [corpus.track_ids[t] for t in corpus.occ_track[indptr[p]:indptr[p + 1]]]
            fh.write(json.dumps({"pid": corpus.pids[p], "name": corpus.names[p],
                                 "description": corpus.descriptions[p] or None,
                                 "tags": corpus.tags[p], "tracks": tids},
                                ensure_ascii=False) + "\n")
    if tracks_path is not None:
        with open(tracks_path, "w", encoding="utf-8") as fh:
            for t in range(corpus.n_tracks):
                fh.write(json.dumps({"track_id": corpus.track_ids[t],
                                     "track_name": corpus.track_names[t],
                                     "artist": corpus.artists[t], "album": corpus.albums[t],
                                     "genres": corpus.track_genres[t]},
                                    ensure_ascii=False) + "\n")


MPD_TRACKS_PER_PLAYLIST = 2.26  # 2,262,292 distinct tracks over 1,000,000 MPD playlists
MPD_MEAN_LENGTH = 66.0  # distinct tracks per MPD playlist (66.3M occurrences / 1M)
# The MPD's long tail: about half of its 2.26M tracks are in a single playlist, and about a
# million in two or more, yet those singletons hold under 2% of the occurrences. A Zipf
# catalogue alone has no such tail (0.4-1.2% singletons at 20k-100k playlists): the head
# (Zipf within genre/mood cells, 0.9 tracks per playlist) is joined by a tail pool of 4.4 tracks
# per playlist from which 2.5% of the occurrences are drawn uniformly within the playlist's
# genre. With lambda = 0.025 x 66 / 4.4 = 0.37 draws per pool track, 31% of the pool is used,
# 83% of it once: about 1.13 of the 2.26 tracks per playlist are singletons (50%) and 1.13 are
# in two or more playlists, as the MPD (docs/benchmarks.md reports the generated shares).
MPD_HEAD_PER_PLAYLIST = 0.9
MPD_TAIL_POOL_PER_PLAYLIST = 4.4
MPD_TAIL_SHARE = 0.025


def mpd_shaped(n_playlists: int, seed: int = 0, *, tail: bool = True) -> Corpus:
    """The planted corpus shaped like the MPD: about 2.26 catalogue tracks per playlist, half
    of them in a single playlist (the long tail), distinct tracks per playlist Poisson with mean
    66, Zipf popularity within genre/mood cells, genre and mood captions. Zipf draws repeat
    popular tracks, so playlists are over-drawn (mean 2.2 x 66), de-duplicated (first
    occurrence kept) and cut to their drawn length; then `MPD_TAIL_SHARE` of the occurrences
    are replaced by tracks of the tail pool (same genre as the playlist). `tail=False`: the
    head alone, with 2.26 tracks per playlist (the generator before the tail)."""
    per = MPD_HEAD_PER_PLAYLIST if tail else MPD_TRACKS_PER_PLAYLIST
    n_tracks = max(100, round(per * n_playlists))
    corpus = generate(SyntheticSpec(n_playlists=n_playlists, n_tracks=n_tracks,
                                    mean_length=2.2 * MPD_MEAN_LENGTH, seed=seed))
    rng = np.random.default_rng([seed, 66])
    target = np.clip(rng.poisson(MPD_MEAN_LENGTH, n_playlists), 5, None)
    key = corpus.occ_playlist.astype(np.int64) * corpus.n_tracks + corpus.occ_track
    keep = np.zeros(key.shape[0], dtype=bool)
    keep[np.unique(key, return_index=True)[1]] = True
    pl = corpus.occ_playlist[keep]
    counts = np.bincount(pl, minlength=n_playlists)
    rank = np.arange(pl.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts)
    cut = rank < target[pl]
    idx = np.flatnonzero(keep)[cut]
    lengths = np.bincount(corpus.occ_playlist[idx], minlength=n_playlists)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    corpus.occ_playlist = corpus.occ_playlist[idx]
    corpus.occ_track = corpus.occ_track[idx]
    corpus.occ_position = (np.arange(idx.shape[0]) - np.repeat(starts, lengths)).astype(np.int32)
    corpus.manifest["synthetic"]["mpd_shaped"] = True
    if tail:
        _add_tail(corpus, n_playlists, seed)
    return corpus


def _add_tail(corpus: Corpus, n_playlists: int, seed: int) -> None:
    """Replace `MPD_TAIL_SHARE` of the occurrences by tracks of a pool of
    `MPD_TAIL_POOL_PER_PLAYLIST` tracks per playlist, each drawn uniformly among the pool's
    tracks of the playlist's genre (its artist one of that genre's)."""
    spec = corpus.manifest["synthetic"]["spec"]
    g_n = min(int(spec["n_genres"]), len(GENRES))
    m_n = min(int(spec["n_moods"]), len(MOODS))
    genre_of = {GENRES[g][0]: g for g in range(g_n)}
    pl_genre = np.array([genre_of[t[0]] for t in corpus.tags], dtype=np.int64)
    rng = np.random.default_rng([seed, 77])
    per_genre = max(1, round(MPD_TAIL_POOL_PER_PLAYLIST * n_playlists / g_n))
    n_occ = corpus.occ_track.shape[0]
    hit = np.flatnonzero(rng.random(n_occ) < MPD_TAIL_SHARE)
    g = pl_genre[corpus.occ_playlist[hit]]
    local = rng.integers(0, per_genre, hit.shape[0])
    pool_id = g * per_genre + local  # tail track = (genre, local index)
    # a pool track drawn twice within one playlist keeps the first occurrence's head track
    pkey = corpus.occ_playlist[hit].astype(np.int64) * (g_n * per_genre) + pool_id
    _, first = np.unique(pkey, return_index=True)
    hit, pool_id, local, g = hit[first], pool_id[first], local[first], g[first]
    used, new_idx = np.unique(pool_id, return_inverse=True)
    base = corpus.n_tracks
    corpus.occ_track[hit] = (base + new_idx).astype(np.int32)
    u_genre = used // per_genre
    u_local = used % per_genre
    u_mood = u_local % m_n
    artists_per_genre = int(spec["artists_per_genre"])
    u_artist = u_genre + g_n * (u_local % artists_per_genre)
    corpus.track_ids += [f"u{t:08d}" for t in used.tolist()]
    corpus.track_names += [f"Tail track {t} ({GENRES[gi][0]}, {MOODS[mi][0]})" for t, gi, mi in
                           zip(used.tolist(), u_genre.tolist(), u_mood.tolist(), strict=True)]
    corpus.artists += [f"Artist {a}" for a in u_artist.tolist()]
    corpus.albums += [None] * used.shape[0]
    corpus.track_genres += [[GENRES[gi][0]] for gi in u_genre.tolist()]
    # head tracks no playlist holds any more are kept in the catalogue: they stay unused rows
    syn = corpus.manifest["synthetic"]
    if syn.get("track_genre") is not None and corpus.n_tracks <= 200_000:
        syn["track_genre"] = list(syn["track_genre"]) + u_genre.tolist()
        syn["track_mood"] = list(syn["track_mood"]) + u_mood.tolist()
    else:
        syn["track_genre"] = syn["track_mood"] = None
    syn["tail"] = {"share": MPD_TAIL_SHARE, "pool_per_playlist": MPD_TAIL_POOL_PER_PLAYLIST,
                   "tracks": int(used.shape[0])}


def write_mpd_slices(corpus: Corpus, out: Path, *, per_slice: int = 1000,
                     compress: bool = True) -> list[Path]:
    """Write a corpus as MPD slice files `mpd.slice.<a>-<b>.json[.gz]` with the full track
    fields of an MPD download (pos, artist_name, track_uri, artist_uri, track_name, album_uri,
    duration_ms, album_name); track ids are 22 characters as Spotify's. gzip level 1 keeps a
    1M-playlist collection near 4 GB on disk instead of about 30 GB; `dynplayer prepare`
    reads both."""
    import gzip

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    duration = rng.integers(120_000, 320_000, corpus.n_tracks)
    artist_ids: dict[str, int] = {}
    frags = []
    for t in range(corpus.n_tracks):  # once per catalogue track, not per occurrence
        artist = corpus.artists[t] or "Unknown"
        a = artist_ids.setdefault(artist, len(artist_ids))
        album = corpus.albums[t] or f"{artist} album {t % 3}"
        frags.append(
            f'"artist_name": {json.dumps(artist, ensure_ascii=False)}, '
            f'"track_uri": "spotify:track:{t:022d}", "artist_uri": "spotify:artist:{a:022d}", '
            f'"track_name": {json.dumps(corpus.track_names[t], ensure_ascii=False)}, '
            f'"album_uri": "spotify:album:{(a * 3 + t % 3):022d}", '
            f'"duration_ms": {int(duration[t])}, '
            f'"album_name": {json.dumps(album, ensure_ascii=False)}')
    indptr = corpus.playlist_indptr
    occ_track = corpus.occ_track.tolist()
    written = []
    for lo in range(0, corpus.n_playlists, per_slice):
        hi = min(lo + per_slice, corpus.n_playlists)
        parts = []
        for p in range(lo, hi):
            tracks = occ_track[indptr[p]:indptr[p + 1]]
            body = ", ".join(f'{{"pos": {i}, {frags[t]}}}' for i, t in enumerate(tracks))
            desc = corpus.descriptions[p]
            extra = f'"description": {json.dumps(desc, ensure_ascii=False)}, ' if desc else ""
            parts.append(
                f'{{"name": {json.dumps(corpus.names[p], ensure_ascii=False)}, '
                f'"collaborative": "false", "pid": {p}, "modified_at": 1500000000, '
                f'"num_tracks": {len(tracks)}, "num_followers": 1, "num_edits": 1, {extra}'
                f'"tracks": [{body}]}}')
        text = ('{"info": {"generated_on": "dynplayer synthetic", '
                f'"slice": "{lo}-{hi - 1}", "version": "v1"}}, "playlists": [\n'
                + ",\n".join(parts) + "\n]}\n")
        name = f"mpd.slice.{lo}-{hi - 1}.json" + (".gz" if compress else "")
        path = out / name
        tmp = path.with_name("." + name + ".tmp")
        if compress:
            with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=1) as fh:
                fh.write(text)
        else:
            tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written
