"""Evaluation: per-image scoring, per-data-set reports, the test and predict callbacks."""
