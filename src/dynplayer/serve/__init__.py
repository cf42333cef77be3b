"""Recommendation service: one recommender interface (exact and pgvector), FastAPI app, web page."""
