"""PostgreSQL + pgvector vector store: the `Catalog` a run is served from, schema, binary COPY
loading, HNSW, the atomic swap, the one indexing function (`indexing`), the embedded server.

May import `data`, `run`, `text.api` and `text.search` (to read a run's text model); must not
import `serve`, `train` or `eval`. `catalog` and `params` import no database driver."""
