"""The scenarios, by the name ``python -m tests.load`` selects them with."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..bench import Bench, ScenarioResult
from . import catchup, cdn, fanout, firehose, floor, idle, keyed, publish, snapshot, topics

Scenario = Callable[[Bench, ScenarioResult], Awaitable[None]]

SCENARIOS: dict[str, tuple[Scenario, str]] = {
    "fanout-ws": (fanout.websocket_json, fanout.DESCRIPTION.format(transport="WebSocket JSON")),
    "fanout-ws-2w": (fanout.websocket_json_2_workers, fanout.WORKERS_DESCRIPTION),
    "fanout-sse": (fanout.sse, fanout.DESCRIPTION.format(transport="SSE")),
    "fanout-sse-h3": (fanout.sse_h3, fanout.H3_DESCRIPTION.format(rate=fanout.H3_RATE)),
    "fanout-ws-batch": (
        fanout.websocket_batch,
        fanout.DESCRIPTION.format(transport="WebSocket herald.v1.batch.json"),
    ),
    "fanout-msgpack": (
        fanout.websocket_msgpack,
        fanout.DESCRIPTION.format(transport="WebSocket herald.v1.msgpack"),
    ),
    "subscribers": (fanout.many_subscribers, fanout.MANY_DESCRIPTION),
    "topics": (topics.run, topics.DESCRIPTION),
    "firehose": (firehose.run, firehose.DESCRIPTION),
    "keyed": (keyed.run, keyed.DESCRIPTION),
    "idle": (idle.run, idle.DESCRIPTION),
    "snapshot": (snapshot.run, snapshot.DESCRIPTION),
    "publish": (publish.run, publish.DESCRIPTION),
    "publish-2w": (publish.run_2_workers, publish.WORKERS_DESCRIPTION),
    "catchup": (catchup.run, catchup.DESCRIPTION),
    "cdn-snapshot": (cdn.run, cdn.DESCRIPTION),
    "floor": (floor.run, floor.DESCRIPTION),
}
