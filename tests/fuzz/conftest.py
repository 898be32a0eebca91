"""Fuzz and abuse tests: one real Herald per module, publishing open, ``fz<run>-*`` exposed.

Bounded for CI: every property runs ``examples(default)`` examples, derandomized so a run is
reproducible. ``FUZZ_EXAMPLES=N`` (``make fuzz``) runs N examples per property with
fresh random inputs instead.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgpack
import pytest
import yaml
from hypothesis import HealthCheck, Phase, settings
from jsonschema import Draft202012Validator
from websockets.asyncio.client import ClientConnection, connect

from ..processes import ROOT, HeraldProcess, serving

OPENAPI_PATH = ROOT / "schemas" / "openapi.yaml"
OPENAPI: dict[str, Any] = yaml.safe_load(OPENAPI_PATH.read_text())

# Topics of this run: a broker given by TEST_KAFKA_BOOTSTRAP keeps what earlier runs
# published (hostile events included), and a run must neither trip over them nor read them.
RUN = uuid.uuid4().hex[:8]
PREFIX = f"fz{RUN}-"
# What the fuzz servers expose: this run's names; everything else is 404.
EXPOSED = rf"{PREFIX}[A-Za-z0-9._-]+"
MAX_BODY_BYTES = 65536
SERVER_SETTINGS = {
    "topics": EXPOSED,
    # These tests need no tokens: every topic is readable, and publishing is open.
    "public_topics": ".*",
    "publish_open": "true",
    # A long-poll (`wait=`) holds a request for at most this long: keeps generated cases quick.
    "max_wait_s": "1",
    "max_body_bytes": str(MAX_BODY_BYTES),
    # A tiny ring: resumes and history pages read Kafka, not only memory.
    "ring_size": "8",
    # Limits are not what these tests are about: keep them out of the way.
    "publish_rate_per_address": "1000000",
    "publish_burst_per_address": "1000000",
    "topic_creations_per_hour": "1000000",
    "ws_message_rate_per_s": "1000000",
    "ws_message_burst": "1000000",
    "max_connections_per_address": "100000",
}

HEALTH_TOPIC = f"{PREFIX}health"
LONG_RUN = os.environ.get("FUZZ_EXAMPLES", "").strip()


def examples(default: int) -> int:
    """Examples per property: ``default`` in CI, ``FUZZ_EXAMPLES`` for a long run."""
    return int(LONG_RUN) if LONG_RUN else default


def fuzz_settings(default_examples: int) -> settings:
    """Hypothesis settings of a property that talks to a real server."""
    return settings(
        max_examples=examples(default_examples),
        deadline=None,
        # CI: the same inputs every run. Long run: new inputs, and the blob to replay a failure.
        derandomize=not LONG_RUN,
        database=None,
        print_blob=bool(LONG_RUN),
        # Shrinking replays a failure against a live server dozens of times: in CI the failing
        # example is reported as found (the regression tests hold minimal reproducers); the
        # long run shrinks.
        phases=list(Phase) if LONG_RUN else [Phase.explicit, Phase.reuse, Phase.generate],
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.kafka)
            # Hostile inputs are big by design; Hypothesis warns when it prints one.
            item.add_marker(
                pytest.mark.filterwarnings(
                    "ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning"
                )
            )


@pytest.fixture(scope="module")
async def fuzz_server(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> AsyncIterator[HeraldProcess]:
    """A Herald of this module alone, so what one module's inputs do cannot hide in another's."""
    name = request.module.__name__.rsplit(".", 1)[-1]
    log = tmp_path_factory.mktemp("herald-fuzz") / f"{name}.log"
    async with serving(HeraldProcess(kafka_bootstrap, log, **SERVER_SETTINGS)) as server:
        yield server
        # After the module's every input: it still serves a fresh client end to end.
        await assert_serving(server)


@pytest.fixture(autouse=True)
async def leaves_the_server_well(fuzz_server: HeraldProcess) -> AsyncIterator[None]:
    """After every test: the process lives, and logged no error while the test ran."""
    start = fuzz_server.log_path.stat().st_size
    yield
    assert_process_alive(fuzz_server)
    problems = log_problems(fuzz_server, start)
    assert not problems, "\n".join(problems[:20])


# -- checks shared by the modules ---------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259); JSON.parse in a browser throws on it")


def strict_json(text: str | bytes) -> Any:
    """Parse JSON as a browser would: NaN and Infinity are errors, not numbers."""
    return json.loads(text, parse_constant=_reject_constant)


def component(name: str) -> Draft202012Validator:
    """A validator for one schema of openapi.yaml, resolving its $refs inside the document."""
    return Draft202012Validator({**OPENAPI, "$ref": f"#/components/schemas/{name}"})


def schema_errors(name: str, instance: Any) -> list[str]:
    return [error.message for error in component(name).iter_errors(instance)]


def documented_ws_close_codes() -> frozenset[int]:
    """The close codes openapi.yaml documents for /v1/ws (its description lists them)."""
    description = OPENAPI["paths"]["/v1/ws"]["get"]["description"]
    closes = description.split("**Close codes**", 1)[1]
    return frozenset(int(code) for code in re.findall(r"`(\d{4})`", closes))


def assert_process_alive(server: HeraldProcess) -> None:
    assert server.process is not None and server.process.poll() is None, server.log()


async def assert_serving(server: HeraldProcess) -> None:
    """The process lives, /healthz is 200, and a fresh client subscribes and gets an event."""
    assert_process_alive(server)
    key = f"probe-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=server.base_url, timeout=15) as client:
        health = await client.get("/healthz")
        assert health.status_code == 200, health.text
        async with connect(f"{server.ws_url}/v1/ws", subprotocols=["herald.v1.json"]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"op": "subscribe", "topic": HEALTH_TOPIC, "key": key}))
            subscribed = await recv_op(ws, "subscribed")
            assert subscribed["key"] == key
            published = await client.post(
                f"/v1/topics/{HEALTH_TOPIC}/events", json={"key": key, "data": {"probe": key}}
            )
            assert published.status_code == 201, published.text
            event = await recv_op(ws, "event")
    assert event["data"] == {"probe": key}, event


async def recv_op(ws: ClientConnection, op: str) -> dict[str, Any]:
    """The next server message with ``op`` (strictly decoded); fails on an ``error``."""
    while True:
        frame = await ws.recv()
        message: dict[str, Any] = (
            msgpack.unpackb(frame, raw=False) if isinstance(frame, bytes) else strict_json(frame)
        )
        assert message.get("op") != "error", message
        if message.get("op") == op:
            return message


def log_problems(server: HeraldProcess, start: int = 0) -> list[str]:
    """Error lines and tracebacks the server logged from byte ``start`` of its log on."""
    with server.log_path.open("rb") as log:
        log.seek(start)
        lines = log.read().decode(errors="replace").splitlines()
    found: list[str] = []
    for index, line in enumerate(lines):
        if line.startswith("Traceback") or " ERROR " in line or " CRITICAL " in line:
            # The exception line closing a traceback says what happened.
            tail = next(
                (later for later in lines[index + 1 : index + 80] if not later.startswith(" ")),
                "",
            )
            found.append(f"{line} ... {tail}" if line.startswith("Traceback") else line)
    return found
