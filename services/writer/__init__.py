"""The writer agent service."""
