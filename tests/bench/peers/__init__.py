"""The report workflow on agentlog's peers (LangGraph, DBOS), for ``make bench``'s comparison.

Needs the ``bench`` extra (``pip install -e '.[bench]'``); nothing outside ``tests/bench``
imports this package, and the product does not depend on it. Each peer runs agentlog's own
agents (:mod:`tests.bench.peers.steps`), so the three systems differ only in orchestration and
durability.
"""
