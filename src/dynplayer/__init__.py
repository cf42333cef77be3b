"""Dynplayer: embedding-based music recommendations learned from playlists."""

__version__ = "0.1.0"
