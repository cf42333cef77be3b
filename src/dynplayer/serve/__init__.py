"""Recommendation service: one recommender interface (exact and pgvector), the model's lifecycle
(`service`), the FastAPI app (`app`, `routes`, `schemas`, `error_handlers`), the worker
supervisor (`workers`), the demo pipeline and the serving benchmark, and the web page.

The top library layer: may import `store`, `text`, `rank`, `library` (a listener's own music,
`/v1/library`), `run`, `settings`; nothing imports it but `commands`."""
