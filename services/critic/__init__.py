"""The critic agent service."""
