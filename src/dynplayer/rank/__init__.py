"""The learned second stage: candidates from cheap retrievers, re-ordered by a ranker."""
