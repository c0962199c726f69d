"""Benchmark variants of the test apps."""
