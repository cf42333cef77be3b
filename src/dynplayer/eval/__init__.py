"""Evaluation: metrics (pure numpy), the continuation protocol, classical peers, hubness, the
genre probe, reports.

Owns how any set of track vectors or scorer is judged. May import `data` and `run`; must not
import `train`, `text`, `store` or `serve` (training uses the protocol for validation, so eval
sits below it)."""
