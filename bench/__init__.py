"""Benchmarks: run with ``python -m bench``; they are not tests."""
