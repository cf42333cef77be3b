"""The served track map (`GET /v1/map`): the most popular tracks' 2-D positions, computed when
the catalog was built (`dynplayer.store.trackmap`), read from memory (exact backend) or from the
store's tracks table (pgvector)."""

from __future__ import annotations

from dataclasses import dataclass

from dynplayer.serve.recommender import ExactRecommender, PgvectorRecommender, Recommender


@dataclass(frozen=True)
class MapPoint:
    track_id: str
    name: str | None
    artist: str | None
    genre: str | None
    x: float  # in [0, 1]
    y: float  # in [0, 1]


def map_points(rec: Recommender, limit: int) -> list[MapPoint]:
    """Up to `limit` tracks of the map, most popular first."""
    if isinstance(rec, ExactRecommender):
        c = rec.catalog
        if c.track_map is None:
            return []
        genres = c.genres or [None] * len(c.track_ids)
        return [MapPoint(c.track_ids[r], c.names[r], c.artists[r], genres[r], float(x), float(y))
                for r, (x, y) in zip(c.track_map.rows[:limit].tolist(),
                                     c.track_map.xy[:limit].tolist(), strict=True)]
    if isinstance(rec, PgvectorRecommender):
        with rec._conn() as conn:  # the recommender's pool and its error mapping
            rows = conn.execute(
                "SELECT track_id, name, artist, genre, map_x, map_y FROM tracks "
                "WHERE map_x IS NOT NULL ORDER BY popularity DESC, track_idx LIMIT %s", [limit]
            ).fetchall()
        return [MapPoint(t, n, a, g, float(x), float(y)) for t, n, a, g, x, y in rows]
    return []
