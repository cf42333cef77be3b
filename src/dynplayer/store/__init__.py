"""PostgreSQL + pgvector vector store: schema, binary COPY loading, HNSW, embedded server."""
