"""Golden workflow histories: recorded once, committed, replayed against today's code."""
