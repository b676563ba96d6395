"""Tracing around the model port: one CLIENT span per model call, in OpenTelemetry's GenAI terms.

Span name ``chat <model>``; attributes ``gen_ai.operation.name``, ``gen_ai.provider.name``,
``gen_ai.request.model``, ``gen_ai.response.model``, ``gen_ai.usage.input_tokens`` and
``gen_ai.usage.output_tokens``, plus agentlog's own: the prompt's id, version and hash, the
strategy, the cost, and whether the token counts are estimates. Prompts and answers are not
recorded: they may hold what the redactor cannot recognise.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from shared.llm.forwarding import ForwardingModel
from shared.llm.port import Completion, CompletionRequest, LanguageModel, ModelError

__all__ = ["TracingModel"]


class TracingModel(ForwardingModel):
    """``inner`` (a metered model, so cost is known) with a span per ``complete``."""

    def __init__(self, inner: LanguageModel) -> None:
        super().__init__(inner)
        self._tracer = trace.get_tracer("agentlog.llm")

    async def complete(self, request: CompletionRequest) -> Completion:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": self.provider,
            "gen_ai.request.model": self.name,
            "agentlog.task": request.task,
        }
        for key, value in (
            ("agentlog.prompt.id", request.prompt_id),
            ("agentlog.prompt.version", request.prompt_version),
            ("agentlog.prompt.hash", request.prompt_hash),
            ("agentlog.strategy", request.strategy),
        ):
            if value:
                attributes[key] = value
        with self._tracer.start_as_current_span(
            f"chat {self.name}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            # A ModelError is an answer the caller handles; it is recorded below, not re-raised
            # as an exception event with a stack trace.
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                completion = await self.inner.complete(request)
            except ModelError as exc:
                span.set_attributes(
                    {
                        "error.type": type(exc).__name__,
                        "gen_ai.usage.input_tokens": exc.prompt_tokens,
                        "gen_ai.usage.output_tokens": exc.completion_tokens,
                        "agentlog.retryable": exc.retryable,
                    }
                )
                span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
                raise
            except BaseException as exc:
                span.set_attribute("error.type", type(exc).__name__)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise
            span.set_attributes(
                {
                    "gen_ai.response.model": completion.model,
                    "gen_ai.usage.input_tokens": completion.prompt_tokens,
                    "gen_ai.usage.output_tokens": completion.completion_tokens,
                    "agentlog.tokens_estimated": completion.tokens_estimated,
                    "agentlog.cost_usd": completion.cost_usd,
                }
            )
            return completion
