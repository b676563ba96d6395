"""The five agentlog services, each its own process: ``python -m services.<name>``."""
