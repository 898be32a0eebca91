"""Benchmarks: ``python -m tests.load`` (``make bench``). Not collected by pytest."""
