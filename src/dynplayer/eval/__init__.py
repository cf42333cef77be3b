"""Evaluation: metrics, the continuation protocol, peers, hubness, genre probe, reports."""
