"""Training of the track embeddings: config, sampling, objectives, the trainer (one member's
epochs), checkpoints, the run (`loop`), exported artifacts and the training benchmarks.

May import `data`, `model`, `eval` (validation during training) and `run`; must not import
`text`, `store` or `serve`."""
