"""Simulated libraries for the benchmark: catalogue tracks tagged the way real files differ from
a streaming catalogue, plus decoys the catalogue does not hold.

`perturb` rewrites one (artist, title) with seeded changes: case, accents dropped, "feat." moved
from the title to the artist (or "ft."), " - Remastered 2011" / "(Live)" / "[Explicit]" added or
a dashed extra dropped, "The" moved or dropped, "&" <-> "and", punctuation dropped, a leading
track number, and a one-letter typo in a long word. `decoys` are invented titles by catalogue
artists (to be placed by their artist) and invented artists (to stay unmatched).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from unidecode import unidecode

from dynplayer.library.records import LibraryTrack

EXTRAS = [" - Remastered 2011", " - 2009 Remaster", " (Live)", " [Explicit]", " (Radio Edit)",
          " - Single Version", " (Remastered)", " [Bonus Track]"]
_FEAT_IN_TITLE = re.compile(r"\s*[(\[]\s*(?:feat\.?|ft\.?|featuring)\s+([^)\]]+)[)\]]", re.I)


def _typo(text: str, rng: np.random.Generator) -> str:
    words = text.split(" ")
    long = [i for i, w in enumerate(words) if len(w) >= 6 and w.isalpha()]
    if not long:
        return text
    i = int(rng.choice(long))
    w = words[i]
    j = int(rng.integers(1, len(w) - 1))
    kind = rng.integers(3)
    if kind == 0:
        w = w[:j] + w[j + 1:]  # a letter dropped
    elif kind == 1:
        w = w[:j] + w[j + 1] + w[j] + w[j + 2:]  # two letters swapped
    else:
        w = w[:j] + w[j] + w[j:]  # a letter doubled
    words[i] = w
    return " ".join(words)


def perturb(artist: str, title: str, rng: np.random.Generator) -> tuple[str, str]:
    """One seeded rewrite of a catalogue (artist, title) as a file might be tagged."""
    a, t = artist, title
    feat = _FEAT_IN_TITLE.search(t)
    if feat and rng.random() < 0.5:  # "Song (feat. B)" by A -> "Song" by "A feat. B"
        t = _FEAT_IN_TITLE.sub("", t).strip()
        a = f"{a} {rng.choice(['feat.', 'ft.', 'Feat.', 'featuring'])} {feat.group(1).strip()}"
    if " - " in t and rng.random() < 0.5:
        t = t.split(" - ")[0].strip()  # "Song - Remastered 2011" -> "Song"
    elif rng.random() < 0.15:
        t = t + str(rng.choice(EXTRAS))
    if a.lower().startswith("the ") and rng.random() < 0.5:
        a = a[4:] + ", The" if rng.random() < 0.5 else a[4:]
    if "&" in a and rng.random() < 0.5:
        a = a.replace("&", "and")
    elif " and " in a and rng.random() < 0.5:
        a = a.replace(" and ", " & ")
    if rng.random() < 0.2:
        a, t = unidecode(a), unidecode(t)
    r = rng.random()
    if r < 0.15:
        a, t = a.lower(), t.lower()
    elif r < 0.25:
        a, t = a.upper(), t.upper()
    elif r < 0.35:
        t = t.title()
    if rng.random() < 0.15:
        t = re.sub(r"['.!?,]", "", t)
    if rng.random() < 0.05:
        t = f"{int(rng.integers(1, 20)):02d} - {t}"
    if rng.random() < 0.08:
        t = _typo(t, rng)
    if rng.random() < 0.04:
        a = _typo(a, rng)
    return a.strip(), t.strip()


@dataclass
class TaggedSet:
    """Library tracks and the catalogue track each stands for (-1: a decoy)."""

    tracks: list[LibraryTrack]
    truth: np.ndarray  # int64 corpus track_idx, -1 for decoys
    decoy_kind: list[str]  # "" | "artist" (invented title, known artist) | "none"


def tagged(track_idx: np.ndarray, names: list[str | None], artists: list[str | None],
           rng: np.random.Generator, prefix: str = "L") -> TaggedSet:
    """Perturbed library tracks for catalogue tracks (those with a name and an artist)."""
    tracks: list[LibraryTrack] = []
    truth: list[int] = []
    for t in track_idx.tolist():
        name, artist = names[t], artists[t]
        if not name or not artist:
            continue
        a, ti = perturb(artist, name, rng)
        tracks.append(LibraryTrack(id=f"{prefix}{len(tracks)}", artist=a, title=ti))
        truth.append(t)
    return TaggedSet(tracks, np.asarray(truth, dtype=np.int64), [""] * len(tracks))


def decoys(n: int, names: list[str | None], artists: list[str | None], known: set[tuple[str, str]],
           rng: np.random.Generator, prefix: str = "D") -> TaggedSet:
    """n invented tracks: half by catalogue artists (titles made of words of other titles, not
    a catalogue title of that artist), half by invented artists."""
    from dynplayer.library.tagkeys import identity

    words = [w for nm in names[:50000] if nm for w in nm.split() if w.isalpha() and len(w) > 3]
    pool = [a for a in artists if a]
    tracks: list[LibraryTrack] = []
    kinds: list[str] = []
    while len(tracks) < n:
        title = " ".join(rng.choice(words, size=int(rng.integers(2, 4)))).title()
        if len(tracks) % 2 == 0:
            artist = str(rng.choice(pool))
            if identity(artist, title) in known:
                continue
            kinds.append("artist")
        else:
            artist = " ".join(rng.choice(words, size=2)).title() + " Collective"
            kinds.append("none")
        tracks.append(LibraryTrack(id=f"{prefix}{len(tracks)}", artist=artist, title=title))
    return TaggedSet(tracks, np.full(len(tracks), -1, dtype=np.int64), kinds)


__all__ = ["TaggedSet", "decoys", "perturb", "tagged"]
