"""The search agent service."""
