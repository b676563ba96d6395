"""Re-export of the workflow policy so domain code reads in domain terms."""

from schemas.events import WorkflowPolicy

__all__ = ["WorkflowPolicy"]
