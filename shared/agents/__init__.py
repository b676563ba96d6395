"""The agents' algorithms: pure functions from a task message and a model to a result message.

The Kafka worker runtime calls these; they do no I/O besides the model call.
"""

from shared.agents.constraints import Constraints, parse_constraints
from shared.agents.critic import critique_draft
from shared.agents.rubric import RubricLimits, RubricReport, evaluate
from shared.agents.summarizer import summarize_memory
from shared.agents.writer import write_draft

__all__ = [
    "Constraints",
    "RubricLimits",
    "RubricReport",
    "critique_draft",
    "evaluate",
    "parse_constraints",
    "summarize_memory",
    "write_draft",
]
