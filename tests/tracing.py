"""An OpenTelemetry SDK for the tests that read spans: recording only while one asks.

OpenTelemetry takes one tracer provider per process, so it is set once, with
an in-memory exporter behind a switch: the rest of the suite runs with it in
place and records nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class _Switched(SimpleSpanProcessor):
    recording = False

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self.recording:
            super().on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        if self.recording:
            super().on_end(span)


_EXPORTER = InMemorySpanExporter()
_PROCESSOR = _Switched(_EXPORTER)


@contextmanager
def recorded() -> Iterator[InMemorySpanExporter]:
    """Spans ended while this is open, in ``exporter.get_finished_spans()``."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(_PROCESSOR)
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    _PROCESSOR.recording = True
    try:
        yield _EXPORTER
    finally:
        _PROCESSOR.recording = False
        _EXPORTER.clear()


async def ended(
    exporter: InMemorySpanExporter, found: Callable[[ReadableSpan], bool], timeout_s: float = 10
) -> ReadableSpan:
    """The first ended span ``found`` accepts, waiting for it to end."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        for span in exporter.get_finished_spans():
            if found(span):
                return span
        assert asyncio.get_running_loop().time() < deadline, "the span never ended"
        await asyncio.sleep(0.02)
