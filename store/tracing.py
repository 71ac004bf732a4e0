"""Whether anything records spans: a process with no OpenTelemetry SDK pays nothing for them.

``opentelemetry-api`` hands out no-op spans until an SDK is configured, but
making one, with its attributes, and propagating its context still costs a
few microseconds a call, on the path of every write. ``recording()`` is one
read of the API's global provider: the proxy (or the no-op provider) means
nobody configured an SDK, and the spans are skipped. An SDK configured
later is seen at the next call.
"""

from __future__ import annotations

from opentelemetry import trace


def recording() -> bool:
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)
