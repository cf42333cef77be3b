"""`normalize_track_id`: the one place a pasted Spotify URI or link becomes a bare track id."""

from __future__ import annotations

import pytest

from dynplayer.ids import normalize_track_id

TID = "6rqhFgbbKwnb9MLmUQDhG6"


@pytest.mark.parametrize("raw", [
    TID, f"  {TID}\n", f"spotify:track:{TID}", f"https://open.spotify.com/track/{TID}",
    f"https://open.spotify.com/track/{TID}?si=1a2b3c4d5e6f", f"open.spotify.com/track/{TID}",
    f"http://open.spotify.com/track/{TID}/", f"https://open.spotify.com/intl-de/track/{TID}?si=x",
    f"https://open.spotify.com/embed/track/{TID}",
])
def test_spotify_spellings_name_one_id(raw: str) -> None:
    assert normalize_track_id(raw) == TID


@pytest.mark.parametrize("raw", [
    "t0000001", "12345", "spotify:album:abc", "https://open.spotify.com/album/abc",
    "https://example.com/track/abc", "spotify:track:", "la vie en rose",
])
def test_other_strings_are_left_alone(raw: str) -> None:
    assert normalize_track_id(raw) == raw
