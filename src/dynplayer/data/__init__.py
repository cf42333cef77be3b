"""Playlist data: sources, the normalised corpus, co-occurrence, track selection and splits."""
