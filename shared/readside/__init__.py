"""The read side: queries over the event log that every interface (CLI, Python client, web
console) calls, so none of them holds query logic of its own.

``queries``: timelines, state at an event, diffs. ``audit``: tamper-evident export and
hash-chain verification (docs/audit.md).
"""
