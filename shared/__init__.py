"""agentlog's shared library: domain logic, ports and adapters used by every service."""
