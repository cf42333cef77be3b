"""Benchmark scripts (also reachable as `dynplayer bench ...`)."""
