"""hrvs-ray's benchmarks: measurements on one shared harness (benchmarks/harness.py).

Run from the repository root as ``python -m benchmarks.NAME``; the index is
benchmarks/README.md."""
