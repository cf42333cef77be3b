"""Freshness (issue 15): new playlists and the tracks they bring added to a trained run without
retraining (`dynplayer update`), vectors folded in for tracks the trained table lacks (the long
tail, `train --long-tail`), the served index following by inserts, and their benchmarks.

An orchestration layer like `commands`: may import `data`, `run`, `text`, `store` and `train`
(the benchmark trains); nothing below it imports `update` except `commands` and `serve` (the
admin update route)."""
