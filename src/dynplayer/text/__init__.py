"""Free-text search: text encoders, the caption <-> playlist model, keyword -> tracks."""
