"""Playlist data: sources (MPD, Melon, JSON lines, the Spotify crawler, synthetic), the
normalised corpus directory, co-occurrence, track selection and splits.

Owns everything up to the corpus directory. Must not import `train`, `eval`, `text`, `store`
or `serve` (every later stage reads the corpus; the corpus knows nothing of them)."""
