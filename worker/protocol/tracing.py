"""Traces across the queue, on ``opentelemetry-api``: nothing is recorded until the
application configures an OpenTelemetry SDK, as with the ``mcp`` SDK.

- A producer's enqueue is a ``PRODUCER`` span, ``send <queue>``; the job carries
  the W3C trace context of that span in its optional field ``tc``
  (``{"traceparent", "tracestate"?}``, protocol 1.2), so a producer in any
  language can join the trace.
- A worker's batch is a ``CONSUMER`` span, ``process <queue>``: the child of
  its job's context when the batch holds jobs of one trace, else a root with a
  link to each job's context, as OpenTelemetry's messaging conventions say
  for a batch. A job without ``tc`` starts no trace of its own: the batch's.
- Each store script is a ``CLIENT`` span (``store.redis.lua``), cron runs and
  durable MCP tools spans of their own.

Attributes name the queue, job ids, counts, scripts and owners, never a
payload, a variable, a result or a secret.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind

from store.tracing import recording

TRACER = trace.get_tracer("taskstore")
SYSTEM = "taskstore"
"""``messaging.system``: the queue's own name, as no registered system is arq's."""


def carrier() -> dict[str, str]:
    """The current W3C trace context (``traceparent``, ``tracestate``); empty when untraced."""
    found: dict[str, str] = {}
    propagate.inject(found)
    return found


def context_of(carried: object) -> Context | None:
    """The trace context a job or a durable tool's job carried, or None."""
    if isinstance(carried, Mapping) and isinstance(carried.get("traceparent"), str):
        return propagate.extract({k: v for k, v in carried.items() if isinstance(v, str)})
    return None


@contextmanager
def sending(queue: str, job_id: str, writes: int) -> Iterator[dict[str, str]]:
    """The span of one enqueue; what the job carries to continue it."""
    if not recording():
        yield {}
        return
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.name": "send",
        "messaging.operation.type": "send",
        "messaging.destination.name": queue,
        "messaging.message.id": job_id,
        "messaging.batch.message_count": writes,
    }
    with TRACER.start_as_current_span(
        f"send {queue}", kind=SpanKind.PRODUCER, attributes=attributes
    ):
        yield carrier()


@contextmanager
def processing(
    queue: str, carried: Sequence[object], job_ids: Sequence[str], writes: int
) -> Iterator[Span]:
    """The span of one batch of jobs: under its jobs' trace, or linked to each of them."""
    if not recording():
        yield trace.INVALID_SPAN
        return
    contexts = [c for c in (context_of(tc) for tc in carried) if c is not None]
    spans = {
        (s.trace_id, s.span_id): s
        for s in (trace.get_current_span(c).get_span_context() for c in contexts)
        if s.is_valid
    }
    parent: Context | None = Context()  # a batch of several traces starts its own
    links: list[Link] = [Link(s) for s in spans.values()]
    if len(spans) == 1 and len(contexts) == len(carried):
        parent, links = contexts[0], []
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.destination.name": queue,
        "messaging.batch.message_count": len(job_ids),
        "taskstore.writes": writes,
    }
    if len(job_ids) == 1:
        attributes["messaging.message.id"] = job_ids[0]
    with TRACER.start_as_current_span(
        f"process {queue}", context=parent, kind=SpanKind.CONSUMER, links=links,
        attributes=attributes,
    ) as span:  # fmt: skip
        yield span
