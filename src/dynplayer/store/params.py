"""HNSW parameters and the `hnsw.ef_search` rule: plain values, importable without a database
driver (settings, the exact backend)."""

from __future__ import annotations

import numpy as np

MAX_EF_SEARCH = 1000  # pgvector's upper bound for hnsw.ef_search
# HNSW defaults (settings, `dynplayer index`, the benchmark). On MPD (`dynplayer bench serve` with
# DYNPLAYER_HNSW_EF_CONSTRUCTION / DYNPLAYER_EF_SEARCH_MIN, 250 test captions) a graph built with
# ef_construction 200 keeps the text answers' top 50 tracks 0.996 equal to exact search at
# ef_search 150, where ef_construction 64 needed 200 (0.994; 150 gave 0.990): a better graph,
# built once, buys cheaper searches.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
EF_SEARCH_MIN = 150
EF_SEARCH_FACTOR = 2.5


def ef_search_for(rows: int, *, minimum: int = EF_SEARCH_MIN,
                  factor: float = EF_SEARCH_FACTOR) -> int:
    """hnsw.ef_search for a query wanting `rows` rows: pgvector returns at most ef_search."""
    return int(min(MAX_EF_SEARCH, max(minimum, int(np.ceil(rows * factor)))))
