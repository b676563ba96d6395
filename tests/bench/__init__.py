"""Benchmarks: plain async functions returning numbers, run by ``make bench``, not by pytest."""
