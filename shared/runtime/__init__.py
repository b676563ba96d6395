"""What every service process shares: the event codec, the clock, the run loop, the worker."""
