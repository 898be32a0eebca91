"""One trace from a publish (HTTP or WebSocket) to the fan-out, through the record's headers,
with an in-process span exporter; none of it when tracing is off."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from websockets.asyncio.client import connect

from service.kafka import TopicPartition
from service.tracing import Tracing

from ..clients import publish, sse, ws_recv_op, ws_send
from ..serving import InProcess, StartServer
from ..waiting import eventually

# A client's own trace: what a browser or a backend with OpenTelemetry sends.
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"


@pytest.fixture(scope="module")
def direct_writes() -> str:
    """Spans do not depend on how frames reach a socket: the fast path only (see conftest)."""
    return "auto"


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
async def traced(
    module_server_factory: StartServer, exporter: InMemorySpanExporter
) -> AsyncIterator[InProcess]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    server = await module_server_factory(topics="it-.*", tracing=Tracing(provider))  # type: ignore[arg-type]
    assert isinstance(server, InProcess)
    yield server


def spans_of(exporter: InMemorySpanExporter, topic: str) -> dict[str, list[ReadableSpan]]:
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in exporter.get_finished_spans():
        if span.name.endswith(f" {topic}"):
            by_name.setdefault(span.name.split()[0], []).append(span)
    return by_name


async def all_spans(exporter: InMemorySpanExporter, topic: str) -> dict[str, list[ReadableSpan]]:
    """The publish, consume and fan-out spans of ``topic``, once all three were recorded."""
    await eventually(lambda: len(spans_of(exporter, topic)) == 3)
    return spans_of(exporter, topic)


def trace_headers(server: InProcess, topic: str) -> list[bytes]:
    log = server.memory.log
    return [
        value
        for partition in range(len(log.topics[topic]))
        for record in log.partition(TopicPartition(topic, partition)).records
        for name, value in record.headers
        if name == "traceparent"
    ]


async def test_a_post_is_one_trace_from_publish_to_fan_out(
    traced: InProcess, exporter: InMemorySpanExporter, topic: str
) -> None:
    async with sse(traced.base_url, f"/v1/topics/{topic}/stream") as stream:
        await publish(traced.base_url, topic, [{"data": 1}, {"data": 2}])
        assert [(await stream.next_event()).json()["data"] for _ in range(2)] == [1, 2]

    def counted(name: str, attribute: str) -> int:
        spans = spans_of(exporter, topic).get(name, [])
        return sum(span.attributes[attribute] for span in spans)  # type: ignore[index,misc]

    await eventually(
        lambda: (
            counted("consume", "messaging.batch.message_count") == 2
            and counted("fan-out", "herald.event_count") == 2
        )
    )
    spans = await all_spans(exporter, topic)
    [published] = spans["publish"]
    assert published.kind is SpanKind.PRODUCER and published.parent is None
    assert published.attributes is not None
    assert published.attributes["messaging.batch.message_count"] == 2
    assert published.attributes["herald.transport"] == "http"
    trace_id = published.context.trace_id
    # Each record carries the publish span's context; they are consumed and fanned out in
    # that trace: one span per publish and fetch, and per publish and fan-out, never one
    # per subscriber.
    expected = f"00-{trace_id:032x}-{published.context.span_id:016x}-".encode()
    headers = trace_headers(traced, topic)
    assert len(headers) == 2 and all(header.startswith(expected) for header in headers)
    for span in spans["consume"] + spans["fan-out"]:
        assert span.context.trace_id == trace_id
        assert span.parent is not None and span.parent.span_id == published.context.span_id
    for consumed in spans["consume"]:
        assert consumed.kind is SpanKind.CONSUMER
        assert [link.context.span_id for link in consumed.links] == [published.context.span_id]
    assert {span.attributes["herald.subscribers"] for span in spans["fan-out"]} == {1}  # type: ignore[index]


async def test_events_of_separate_publishes_get_a_fan_out_span_each(
    traced: InProcess, exporter: InMemorySpanExporter, topic: str
) -> None:
    async with sse(traced.base_url, f"/v1/topics/{topic}/stream") as stream:
        for n in range(3):
            await publish(traced.base_url, topic, {"data": n})
        assert [(await stream.next_event()).json()["data"] for _ in range(3)] == [0, 1, 2]
    await eventually(lambda: len(spans_of(exporter, topic).get("fan-out", [])) == 3)
    spans = spans_of(exporter, topic)
    traces = {span.context.trace_id for span in spans["publish"]}
    assert len(traces) == 3
    assert {span.context.trace_id for span in spans["fan-out"]} == traces


async def test_a_client_traceparent_is_continued(
    traced: InProcess, exporter: InMemorySpanExporter, topic: str
) -> None:
    await publish(traced.base_url, topic, {"data": 1}, headers={"traceparent": TRACEPARENT})
    spans = await all_spans(exporter, topic)
    [published] = spans["publish"]
    assert f"{published.context.trace_id:032x}" == CLIENT_TRACE
    assert published.parent is not None and f"{published.parent.span_id:016x}" == CLIENT_SPAN
    assert {f"{s.context.trace_id:032x}" for group in spans.values() for s in group} == {
        CLIENT_TRACE
    }


async def test_a_websocket_publish_continues_its_upgrade_requests_trace(
    traced: InProcess, exporter: InMemorySpanExporter, topic: str
) -> None:
    headers = {"traceparent": TRACEPARENT}
    async with connect(f"{traced.ws_url}/v1/ws", additional_headers=headers) as ws:
        await ws_send(ws, {"op": "publish", "topic": topic, "data": "hi", "ref": 1})
        await ws_recv_op(ws, "ack")
    spans = await all_spans(exporter, topic)
    [published] = spans["publish"]
    assert published.attributes is not None and published.attributes["herald.transport"] == "ws"
    assert f"{published.context.trace_id:032x}" == CLIENT_TRACE


async def test_a_record_another_producer_traced_is_continued(
    traced: InProcess, exporter: InMemorySpanExporter, topic: str
) -> None:
    async with sse(traced.base_url, f"/v1/topics/{topic}/stream") as stream:
        await publish(traced.base_url, topic, {"data": 0})  # the topic exists from here
        await stream.next_event()
        exporter.clear()
        traced.memory.log.append(
            topic, b'"theirs"', None, 0, [("traceparent", TRACEPARENT.encode())]
        )
        assert (await stream.next_event()).json()["data"] == "theirs"
    await eventually(lambda: len(spans_of(exporter, topic)) == 2)
    spans = spans_of(exporter, topic)
    assert set(spans) == {"consume", "fan-out"}
    for group in spans.values():
        [span] = group
        assert f"{span.context.trace_id:032x}" == CLIENT_TRACE
        assert span.parent is not None and f"{span.parent.span_id:016x}" == CLIENT_SPAN


async def test_without_tracing_records_carry_no_trace(
    function_server_factory: StartServer, topic: str
) -> None:
    plain = await function_server_factory(topics="it-.*")
    assert isinstance(plain, InProcess)
    await publish(plain.base_url, topic, {"data": 1}, headers={"traceparent": TRACEPARENT})
    assert trace_headers(plain, topic) == []
