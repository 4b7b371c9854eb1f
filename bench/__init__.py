"""Benchmarks: ops against reference libraries, and the queue's overhead."""
