"""Training of the track embeddings: config, sampling, loop, artifacts."""
