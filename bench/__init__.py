"""Benchmark scripts: each prints its figures; none is a test (see bench/README.md)."""
