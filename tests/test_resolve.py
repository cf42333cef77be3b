"""Which track a name means (`dynplayer.serve.resolve`, the resolver of `similar`, `recommend`
and the Python API), on names shaped like the MPD's: versions ("- Remastered 2015"), covers,
one song by several artists; and the autocomplete's order and its near-miss flag."""

from __future__ import annotations

import pytest

from dynplayer.serve.resolve import AmbiguousTrackName, TrackResolver, UnknownTrackName
from dynplayer.serve.track_search import TrackMatcher, holds_words

TRACKS = [  # (id, name, artist, playlists)
    ("id-hey-jude", "Hey Jude - Remastered 2015", "The Beatles", 50),
    ("id-blackbird", "Blackbird - Remastered", "The Beatles", 23),
    ("id-wonderwall", "Wonderwall - Remastered", "Oasis", 181),
    ("id-wonderwall-cover", "Wonderwall", "Ryan Adams", 29),
    ("id-feeling-nina", "Feeling Good", "Nina Simone", 27),
    ("id-feeling-buble", "Feeling Good", "Michael Bublé", 18),
    ("id-feeling-remix", "Feeling Good - Bassnectar Remix", "Nina Simone", 15),
    ("id-tipsy", "Tipsy - Club Mix", "J-Kwon", 116),
    ("id-gangnam", "Gangnam Style (강남스타일)", "PSY", 35),
    ("id-good-feeling", "Good Feeling", "Flo Rida", 57),
]


@pytest.fixture(scope="module")
def resolver() -> TrackResolver:
    return TrackResolver([t[0] for t in TRACKS], [t[1] for t in TRACKS],
                         [t[2] for t in TRACKS], [t[3] for t in TRACKS])


def meant(resolver: TrackResolver, q: str) -> str:
    return resolver.ids[resolver.resolve(q).row]


@pytest.mark.parametrize("q, track", [
    ("hey jude", "id-hey-jude"),  # the title without its version
    ("HEY JUDE", "id-hey-jude"),
    ("blackbird", "id-blackbird"),
    ("wonderwall", "id-wonderwall"),  # a cover played a sixth as often is no rival
    ("wonderwall ryan adams", "id-wonderwall-cover"),  # title and artist choose
    ("feeling good nina simone", "id-feeling-nina"),  # the song's most played version
    ("psy", "id-gangnam"),  # the artist's name as a word, not "Tipsy"
    ("gangnam style", "id-gangnam"),
    ("id-blackbird", "id-blackbird"),  # an id is that track
])
def test_a_name_means_one_track(resolver: TrackResolver, q: str, track: str) -> None:
    assert meant(resolver, q) == track


def test_the_other_songs_a_name_fits_are_reported(resolver: TrackResolver) -> None:
    found = resolver.resolve("wonderwall")
    assert found.by_name and [resolver.ids[r] for r in found.others] == ["id-wonderwall-cover"]
    assert not resolver.resolve("id-hey-jude").by_name


def test_an_ambiguous_name_lists_what_it_could_mean(resolver: TrackResolver) -> None:
    with pytest.raises(AmbiguousTrackName) as err:
        resolver.resolve("feeling good")  # Nina Simone 27 vs Michael Bublé 18 playlists
    message = str(err.value)
    assert "'feeling good' could mean 2 tracks" in message
    assert "Nina Simone (id-feeling-nina)" in message and "Bublé (id-feeling-buble)" in message
    assert "Flo Rida" not in message  # "Good Feeling" fits less well
    assert "feeling good nina simone" in message and "\n" not in message


def test_an_unknown_name_is_an_error_naming_it(resolver: TrackResolver) -> None:
    with pytest.raises(UnknownTrackName, match="no track with the id or name 'qwzx plorb'"):
        resolver.resolve("qwzx plorb")


def test_autocomplete_puts_a_word_start_before_a_word_middle() -> None:
    m = TrackMatcher([t[1] for t in TRACKS], [t[2] for t in TRACKS], [t[3] for t in TRACKS])
    assert m.search("psy", 5) == [8, 7]  # PSY (35 playlists) before "Tipsy" (116)
    assert m.search("feeling", 5) == [9, 4, 5, 6]  # all word starts: most played first


def test_near_misses_are_told_apart_from_matches() -> None:
    assert holds_words("hey jude", "Hey Jude - Remastered 2015", "The Beatles")
    assert holds_words("beatles jude", "Hey Jude - Remastered 2015", "The Beatles")
    assert not holds_words("hey jdue", "Hey Jude - Remastered 2015", "The Beatles")
