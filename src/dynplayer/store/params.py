"""HNSW parameters and the `hnsw.ef_search` rule: plain values, importable without a database
driver (settings, the exact backend)."""

from __future__ import annotations

import numpy as np

MAX_EF_SEARCH = 1000  # pgvector's upper bound for hnsw.ef_search
# HNSW defaults (settings, `dynplayer index`, the benchmark), chosen on MPD **validation** captions
# (`dynplayer bench serve RUN --split val` with DYNPLAYER_HNSW_EF_CONSTRUCTION /
# DYNPLAYER_EF_SEARCH_MIN; docs/benchmarks.md): the cheapest search whose mean top-50 overlap
# with exact search is >= 0.99 for similar tracks, continuation and text. A graph built with
# ef_construction 200 reaches 0.995 on text at ef_search 125 (the floor 100; a text query wants
# 50 playlists, 2.5 x 50 = 125), where ef_construction 64 needs ef_search 150 for 0.991.
HNSW_M = 16
# The tracks' graph gets more links: single-track queries over a large vocabulary are harder
# than the playlists' (at 1M playlists' 112,063 tracks, a *scratch* sample of 300 tracks other
# than bench serve's: m 16 gave top-50 overlap 0.903 at ef_search 128 and 0.944 even at 1,000;
# m 32 gave 0.974 at 128; the build took 47 s instead of 31 s). Continuation and text were >= 0.99
# with m 16 at that size, so the playlists' table keeps it.
HNSW_TRACK_M = 32
HNSW_EF_CONSTRUCTION = 200
EF_SEARCH_MIN = 100
EF_SEARCH_FACTOR = 2.5
# Up to this many playlists, the pgvector backend ranks a text query's playlists exactly, in
# memory (their float32 vectors are there anyway, for the re-rank): 0.5 ms for MPD's
# 4,924 x 768 on the 2-core VM, about what the HNSW query costs, and then the answer is the
# exact backend's and the CLI's to the last digit (HNSW missed one of the top 50 playlists of
# "rainy day jazz": 4.001 instead of 4.006, two ranks swapped). Larger catalogs use HNSW.
EXACT_PLAYLISTS_MAX = 50_000


def ef_search_for(rows: int, *, minimum: int = EF_SEARCH_MIN,
                  factor: float = EF_SEARCH_FACTOR) -> int:
    """hnsw.ef_search for a query wanting `rows` rows: pgvector returns at most ef_search."""
    return int(min(MAX_EF_SEARCH, max(minimum, int(np.ceil(rows * factor)))))


# A single track's neighbours are the hardest query of a large catalogue (its nearest tracks sit
# at cosine 0.4-0.8 in every direction, where a mean of seeds is near a dense region): at
# 1,976,343 tracks (the 1M-playlist store, m 32, ef_construction 200; 500 random tracks, top-50
# overlap with exact search) ef_search 128 gave 0.915, 300 0.938, 500 0.950 and 1,000 0.963,
# while continuations were 1.000 at 128; at 166k tracks 128 gave 0.999. A one-track query gets
# one ef_search per this many tracks (the usual rule below 250k tracks, 1,000 from 2M).
TRACKS_PER_SINGLE_EF = 2_000


def ef_search_single(rows: int, n_tracks: int, *, minimum: int = EF_SEARCH_MIN,
                     factor: float = EF_SEARCH_FACTOR) -> int:
    """hnsw.ef_search for the neighbours of one track among `n_tracks`."""
    by_size = -(-max(n_tracks, 0) // TRACKS_PER_SINGLE_EF)
    return int(min(MAX_EF_SEARCH, max(ef_search_for(rows, minimum=minimum, factor=factor),
                                      by_size)))


MIN_MAINTENANCE_MB = 64


def hnsw_build_settings(n_rows: int, vector_bytes: int, m: int, *, available_bytes: int,
                        cpus: int) -> tuple[int, int]:
    """(maintenance_work_mem in MiB, max_parallel_maintenance_workers) for an HNSW build.

    The build slows sharply once its graph spills out of maintenance_work_mem (pgvector then
    goes on inserting on disk), so it gets the graph's estimated size: each row's vector, its
    neighbour candidates (16 bytes each in pgvector's build graph: 2m at layer 0 and about two
    above) and about 192 bytes of element, plus a quarter, capped at 40% of the available
    memory. Workers are the other cores (pgvector builds in parallel with them), at most 7.
    At 494k tracks of 256 float32 with m 32, the earlier estimate (8 bytes a neighbour, 944
    MiB) spilled near the end: the last 12k rows went 15x slower than the rest.
    """
    graph = n_rows * (vector_bytes + 16 * (2 * m + 2) + 192) * 1.25
    cap = max(MIN_MAINTENANCE_MB, int(available_bytes * 0.4) // 2**20)
    mem_mb = int(min(cap, max(MIN_MAINTENANCE_MB, np.ceil(graph / 2**20))))
    return mem_mb, int(max(0, min(cpus - 1, 7)))
