"""Traces as an operator's collector receives them over OTLP/HTTP: one trace from a POST to
the fan-out on the instance that took it and on another one."""

from __future__ import annotations

import socket
from pathlib import Path

from ..clients import publish, sse
from ..otlp_receiver import OtlpReceiver, otlp_receiver
from ..processes import HeraldProcess, serving
from ..waiting import eventually


def traced(kafka_bootstrap: str, log: Path, receiver: OtlpReceiver) -> HeraldProcess:
    server = HeraldProcess(kafka_bootstrap, log, topics="it-.*")
    server.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
    server.env["OTEL_BSP_SCHEDULE_DELAY"] = "100"  # ms: export at once, not every 5 s
    return server


def instance(server: HeraldProcess) -> str:
    assert server.process is not None
    return f"{socket.gethostname()}-{server.process.pid}"


async def test_one_trace_from_a_post_to_the_fan_out_on_two_instances(
    kafka_bootstrap: str, tmp_path: Path, topic: str
) -> None:
    with otlp_receiver() as receiver:
        async with (
            serving(traced(kafka_bootstrap, tmp_path / "a.log", receiver)) as a,
            serving(traced(kafka_bootstrap, tmp_path / "b.log", receiver)) as b,
        ):
            await publish(a.base_url, topic, {"data": "first"})  # the topic exists from here
            async with (
                sse(a.base_url, f"/v1/topics/{topic}/stream") as on_a,
                sse(b.base_url, f"/v1/topics/{topic}/stream") as on_b,
            ):
                await publish(a.base_url, topic, {"data": "traced"})
                for stream in (on_a, on_b):
                    while (await stream.next_event()).json()["data"] != "traced":
                        pass

            def of_the_post() -> list:
                spans = receiver.received()
                publishes = [s for s in spans if s.name == f"publish {topic}"]
                if len(publishes) < 2:
                    return []
                trace = publishes[-1].trace_id
                return [s for s in spans if s.trace_id == trace]

            def complete() -> bool:
                names = {(s.name.split()[0], s.instance) for s in of_the_post()}
                wanted = {("publish", instance(a))}
                wanted |= {
                    (step, instance(server)) for step in ("consume", "fan-out") for server in (a, b)
                }
                return wanted <= names

            await eventually(complete, within=20)
            spans = of_the_post()
            [published] = [s for s in spans if s.name.startswith("publish")]
            for span in spans:
                if span is not published:
                    assert span.parent_span_id == published.span_id
            consumed = [s for s in spans if s.name.startswith("consume")]
            assert {s.instance for s in consumed} == {instance(a), instance(b)}
            assert all(s.links == (published.span_id,) for s in consumed)
