"""Analyses, checks and the report screenshot: tools that are not measurements.

Run from the repository root as ``python -m tools.NAME``; the index is tools/README.md."""
