"""Freshness: new playlists and tracks added to a trained run without retraining."""
