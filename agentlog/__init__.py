"""agentlog from Python: submit goals, read workflows, roll back, fork and compare runs.

from agentlog import Client

async with Client() as client:
    workflow_id = await client.submit("Explain how replay rebuilds workflow state")
    completion = await client.wait_for_completion(workflow_id, timeout_s=120)
"""

from agentlog.client import Client
from shared.commands import RefusedError, WaitTimeoutError
from shared.readside.queries import Diff, NotFoundError

__all__ = ["Client", "Diff", "NotFoundError", "RefusedError", "WaitTimeoutError"]
