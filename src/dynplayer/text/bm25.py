"""BM25 for the text stage (the lexical peer of the text model); it lives in `eval.bm25`, where
the whole-catalogue evaluation's title peer uses it too."""

from dynplayer.eval.bm25 import BM25, tokenize

__all__ = ["BM25", "tokenize"]
