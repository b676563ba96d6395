"""The supervisor: the only writer of workflow streams."""
