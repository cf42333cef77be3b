"""Free-text search: text encoders, the caption <-> playlist model, its training, the search
space (`space`), keyword -> tracks search (`search`, the contract in `api`), its evaluation
and benchmark.

May import `data`, `run`, `eval.metrics` / `eval.hubness`; must not import `train`, `store` or
`serve` (serving depends on the contract in `text.api`, not the other way round)."""
