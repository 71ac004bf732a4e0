"""One trace from the caller through the queue and the worker to the store's scripts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from store import make_key
from tests.harness import unique
from tests.tracing import ended, recorded
from tests.worker.conftest import drop_test_keys, isolated_settings, running_worker
from worker.producer.client import TaskStoreClient
from worker.producer.queue import enqueue, job_payload, wait_reply
from worker.protocol.serialization import serialize
from worker.protocol.settings import Settings

TRACER = trace.get_tracer("tests")


@pytest.fixture
async def settings(redis_url: str) -> AsyncIterator[Settings]:
    settings = isolated_settings(redis_url, "trace")
    yield settings
    await drop_test_keys(settings)


def named(name: str) -> Any:
    return lambda span: span.name == name


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_a_single_write_is_one_trace_down_to_its_script(settings: Settings) -> None:
    queue = settings.queue_name
    with recorded() as spans:
        async with running_worker(settings), TaskStoreClient.connect(settings) as client:
            with TRACER.start_as_current_span("caller") as caller:
                await client.put(make_key(unique(), "t"), b"x", coalesce=False)
            send = await ended(spans, named(f"send {queue}"))
            process = await ended(spans, named(f"process {queue}"))
            script = await ended(spans, lambda s: parent_of(s) == process.context.span_id)
    trace_id = caller.get_span_context().trace_id
    assert {s.context.trace_id for s in (send, process, script)} == {trace_id}
    assert send.kind is SpanKind.PRODUCER
    assert parent_of(send) == caller.get_span_context().span_id
    assert send.attributes is not None
    assert send.attributes["messaging.destination.name"] == queue
    assert send.attributes["messaging.batch.message_count"] == 1
    assert process.kind is SpanKind.CONSUMER
    assert parent_of(process) == send.context.span_id
    assert (script.name, script.kind) == ("EVALSHA write", SpanKind.CLIENT)


async def test_a_coalesced_job_carries_its_writes_in_one_trace(settings: Settings) -> None:
    owner = unique()
    with recorded() as spans:
        async with running_worker(settings), TaskStoreClient.connect(settings) as client:
            with TRACER.start_as_current_span("caller") as caller:
                await asyncio.gather(
                    *(client.put(make_key(owner, f"t{i}"), b"x") for i in range(3))
                )
            send = await ended(spans, named(f"send {settings.queue_name}"))
            process = await ended(spans, named(f"process {settings.queue_name}"))
    assert send.attributes is not None
    assert send.attributes["messaging.batch.message_count"] == 3
    assert send.context.trace_id == caller.get_span_context().trace_id
    assert parent_of(process) == send.context.span_id


async def test_a_batch_of_two_producers_jobs_links_both(settings: Settings) -> None:
    owner = unique()
    with recorded() as spans:
        async with (
            TaskStoreClient.connect(settings) as first,
            TaskStoreClient.connect(settings) as second,
        ):
            handles = []
            for client in (first, second):  # two traces, enqueued before any worker runs
                with TRACER.start_as_current_span("producer"):
                    handles.append(await client.enqueue_put(make_key(owner, unique()), b"x"))
            sends = [s for s in spans.get_finished_spans() if s.kind is SpanKind.PRODUCER]
            async with running_worker(settings):
                assert [await h.result() for h in handles] == [1, 1]
                process = await ended(spans, named(f"process {settings.queue_name}"))
    assert len(sends) == 2
    assert process.parent is None  # jobs of two traces: a root of its own, linked to each
    linked = {(link.context.trace_id, link.context.span_id) for link in process.links}
    assert linked == {(s.context.trace_id, s.context.span_id) for s in sends}


async def test_a_job_s_traceparent_is_continued_and_nothing_of_the_payload_shows(
    settings: Settings,
) -> None:
    marker = f"marker-{unique()}"
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    carried = {"traceparent": f"00-{trace_id}-{span_id}-01"}
    owner = unique()
    with recorded() as spans:
        async with running_worker(settings), TaskStoreClient.connect(settings) as client:
            # As a producer in another language sends it: the context in "tc".
            args = serialize({"key": make_key(owner, "t"), "data": marker.encode()})
            payload = job_payload("put", b"[]", args, carried)
            assert json.loads(payload)["tc"] == carried
            assert await enqueue(client.pool, settings.queue_name, "traced", payload)
            assert await wait_reply(client.pool, settings.queue_name, "traced", 10) is not None
            task = await client.create_task(owner, "tools/call")
            await client.set_variables(task.task_id, owner, {"note": marker})
            await client.complete_with_result(task.task_id, owner, "completed", {"t": marker})
            process = await ended(
                spans,
                lambda s: s.name.startswith("process") and s.context.trace_id == int(trace_id, 16),
            )
            await ended(spans, lambda s: "set_variables" in s.name or s.name == "EVALSHA write")
            everything = spans.get_finished_spans()
    assert parent_of(process) == int(span_id, 16)
    shown = json.dumps(
        [
            {
                "name": s.name,
                "attributes": dict(s.attributes or {}),
                "events": [dict(e.attributes or {}) for e in s.events],
                "links": [dict(link.attributes or {}) for link in s.links],
            }
            for s in everything
        ],
        default=str,
    )
    assert len(everything) > 5
    assert marker not in shown
