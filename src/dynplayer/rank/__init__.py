"""The learned second stage: candidates from cheap retrievers (track embeddings, co-occurrence,
EASE) re-ordered by a gradient-boosted ranker. May import data, eval, model, train and text;
nothing below `commands` and `serve` imports it except those two."""
