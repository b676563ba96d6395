"""The `agentlog` command line."""
