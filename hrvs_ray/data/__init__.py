"""Datasets: the real MAMe layout, a synthetic look-alike, image shapes, prepared input sets, data check."""
