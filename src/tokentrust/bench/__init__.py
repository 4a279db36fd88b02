"""Benchmarks: datasets with gold answers, answer quality, and (later) the runner."""
