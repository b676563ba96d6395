"""The read side: queries over the event log that every interface (CLI, Python client, web
console) calls, so none of them holds query logic of its own.

``audit``: tamper-evident export and hash-chain verification.
"""
