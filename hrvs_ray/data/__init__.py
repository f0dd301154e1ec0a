"""Datasets (the real MAMe layout and a synthetic look-alike), input sets and batching."""
