"""Benchmarks of the job engine, each a standalone script measured beside its bare tool."""
