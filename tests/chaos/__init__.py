"""Chaos tests: the five services as processes, with faults injected (``-m chaos``)."""
