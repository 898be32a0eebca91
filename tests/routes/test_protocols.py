"""The same rules on every protocol: each test runs over HTTP/1.1, HTTP/2 and HTTP/3 against
one server that serves all three (TLS, and QUIC on a UDP port of its own).

Tokens, origins, rate and connection limits, heartbeats, lagging and token-expiry endings, a
client that leaves, and the graceful drain. The fast path stays on (``auto``): HTTP/2 and
HTTP/3 must fall back to plain ASGI by themselves. A reader that stalls is cut on TCP in
test_slow_consumers, on HTTP/3 here.
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from ..certificates import Certificates, make_certificates
from ..clients import sse_on
from ..h3_client import h3_client, h3_connection
from ..serving import InProcess, StartServer
from ..tokens import token
from .conftest import APP, SECURED

VERSIONS = {"http/1.1": "HTTP/1.1", "h2": "HTTP/2", "h3": "HTTP/3"}


@pytest.fixture(scope="module")
def direct_writes() -> str:
    """The fast path on: over HTTP/2 and HTTP/3 it must not be used (see conftest)."""
    return "auto"


@pytest.fixture(params=list(VERSIONS))
def protocol(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


async def serve_all(start: StartServer, certificates: Certificates, **settings: str) -> InProcess:
    """A server of all three protocols (HTTP/3 on a free UDP port) with ``settings``."""
    served = await start(
        tls_cert=str(certificates.server_cert),
        tls_key=str(certificates.server_key),
        quic_bind="127.0.0.1:0",
        # Hypercorn's QUIC server ends only once a datagram comes or the grace is over.
        shutdown_grace_s="0.2",
        **settings,
    )
    assert isinstance(served, InProcess)
    return served


@pytest.fixture(scope="module")
async def strict(
    module_server_factory: StartServer, certificates: Certificates
) -> AsyncIterator[InProcess]:
    yield await serve_all(
        module_server_factory,
        certificates,
        **SECURED,
        publish_rate_per_token="1",
        publish_burst_per_token="3",
        subscriber_queue_size="4",
        sse_heartbeat_s="0.5",
    )


@asynccontextmanager
async def client_over(
    protocol: str, server: InProcess, certificates: Certificates, **options: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client that speaks ``protocol`` to ``server`` and nothing else."""
    if protocol == "h3":
        async with h3_client(server.quic_url, certificates.ca_file, timeout=30, **options) as c:
            yield c
        return
    verify = ssl.create_default_context(cafile=str(certificates.ca_file))
    async with httpx.AsyncClient(
        base_url=server.base_url,
        verify=verify,
        http1=protocol == "http/1.1",
        http2=protocol == "h2",
        timeout=30,
        **options,
    ) as client:
        yield client


def grants(**claims: Any) -> dict[str, str]:
    """A bearer token of a subject of its own (the publish rate is counted per subject)."""
    return {"Authorization": f"Bearer {token(f'user-{uuid.uuid4().hex[:8]}', **claims)}"}


async def open_streams(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    line = next(x for x in text.splitlines() if x.startswith('herald_connections{transport="sse"}'))
    return float(line.split()[-1])


async def test_reading_a_private_topic_needs_a_token(
    strict: InProcess, certificates: Certificates, protocol: str
) -> None:
    private = f"priv-{uuid.uuid4().hex[:8]}"
    path = f"/v1/topics/{private}/stream"
    async with client_over(protocol, strict, certificates) as client:
        anonymous = await client.get(path)
        async with sse_on(client, path, grants(subscribe=[private])) as stream:
            assert stream.response.http_version == VERSIONS[protocol]
    assert anonymous.status_code == 401
    assert anonymous.json()["type"] == "urn:herald:problem:unauthenticated"


async def test_only_listed_origins_may_publish(
    strict: InProcess, certificates: Certificates, protocol: str, topic: str
) -> None:
    path = f"/v1/topics/{topic}/events"
    writer = grants(publish=["it-*"], create=["it-*"])
    preflight = {"Access-Control-Request-Method": "POST"}
    async with client_over(protocol, strict, certificates) as client:
        foreign = await client.options(
            path, headers={"Origin": "https://evil.example", **preflight}
        )
        listed = await client.options(path, headers={"Origin": APP, **preflight})
        posted = await client.post(path, json={"data": 1}, headers={"Origin": APP, **writer})
    assert foreign.status_code == 403 and "access-control-allow-origin" not in foreign.headers
    assert listed.status_code == 204 and listed.headers["access-control-allow-origin"] == APP
    assert posted.status_code == 201, posted.text
    assert posted.headers["access-control-allow-origin"] == APP
    assert posted.http_version == VERSIONS[protocol]


async def test_publishing_past_the_rate_is_429(
    strict: InProcess, certificates: Certificates, protocol: str, topic: str
) -> None:
    writer = grants(publish=["it-*"], create=["it-*"])
    async with client_over(protocol, strict, certificates) as client:
        path = f"/v1/topics/{topic}/events"
        within = await client.post(path, json=[{"data": n} for n in range(3)], headers=writer)
        over = await client.post(path, json={"data": 3}, headers=writer)
    assert within.status_code == 201, within.text
    assert over.status_code == 429 and int(over.headers["retry-after"]) >= 1


async def test_a_quiet_stream_gets_heartbeats(
    strict: InProcess, certificates: Certificates, protocol: str, topic: str
) -> None:
    async with (
        client_over(protocol, strict, certificates) as client,
        sse_on(client, f"/v1/topics/{topic}/stream") as stream,
    ):
        message = await stream.next()
    assert message.comments == ["ping"] and message.data is None


@pytest.mark.parametrize(
    "protocol",
    # Over HTTP/1.1 the fast path writes a whole run of events at once, so nothing queues
    # here; its lagging is a stalled socket's (test_slow_consumers).
    ["h2", "h3"],
)
async def test_a_stream_whose_queue_overflows_ends_lagging_with_its_cursor(
    strict: InProcess, certificates: Certificates, protocol: str, topic: str
) -> None:
    writer = grants(publish=["it-*"], create=["it-*"])
    async with (
        client_over(protocol, strict, certificates) as client,
        sse_on(client, f"/v1/topics/{topic}/stream?key=k") as stream,
    ):
        batch = [{"key": "k", "data": n} for n in range(3)]
        for _ in range(3):  # past the queue of 4 in one go: the rate allows three
            answer = await client.post(f"/v1/topics/{topic}/events", json=batch, headers=writer)
            assert answer.status_code in (201, 429), answer.text
            writer = grants(publish=["it-*"])
        while (message := await stream.next_event()).event != "lagging":
            last = message.id
        with pytest.raises(EOFError):
            await stream.next()
    assert message.json()["cursor"] == message.id == last


async def test_a_stream_ends_when_its_token_does(
    strict: InProcess, certificates: Certificates, protocol: str
) -> None:
    private = f"priv-{uuid.uuid4().hex[:8]}"
    # Two seconds: exp is whole seconds, so a one-second token may be expired on arrival.
    short = grants(subscribe=[private], ttl=2)
    async with (
        client_over(protocol, strict, certificates) as client,
        sse_on(client, f"/v1/topics/{private}/stream", short) as stream,
    ):
        ending = await stream.next_event()
        with pytest.raises(EOFError):
            await stream.next()
    assert ending.event == "token-expired" and ending.json()["cursor"] == ending.id


async def test_a_client_that_leaves_is_let_go(
    strict: InProcess, certificates: Certificates, protocol: str, topic: str
) -> None:
    async with client_over(protocol, strict, certificates) as client:
        async with sse_on(client, f"/v1/topics/{topic}/stream"):
            assert await open_streams(client) >= 1
        if protocol == "h3":
            # The HTTP/3 client stops the stream and keeps the connection, as a browser
            # does; httpx over TCP leaves a stream only with its connection.
            await until_no_streams(strict, certificates)
    await until_no_streams(strict, certificates)


async def until_no_streams(server: InProcess, certificates: Certificates) -> None:
    """Wait until /metrics counts no open stream. Over HTTP/3 Herald hears that a client
    left at its next write (a heartbeat at the latest)."""
    async with client_over("http/1.1", server, certificates) as client, asyncio.timeout(10):
        while await open_streams(client):  # noqa: ASYNC110 (a number in another's answer)
            await asyncio.sleep(0.05)


async def test_connections_per_address_are_limited(
    function_server_factory: StartServer, certificates: Certificates, protocol: str, topic: str
) -> None:
    served = await serve_all(
        function_server_factory, certificates, topics="it-.*", max_connections_per_address="1"
    )
    path = f"/v1/topics/{topic}/stream"
    async with (
        client_over(protocol, served, certificates) as client,
        sse_on(client, path),
    ):
        second = await client.get(path)
    assert second.status_code == 429 and int(second.headers["retry-after"]) > 0


async def test_a_drain_ends_every_stream_with_shutdown(
    function_server_factory: StartServer, certificates: Certificates, protocol: str, topic: str
) -> None:
    served = await serve_all(function_server_factory, certificates, topics="it-.*")
    async with (
        client_over(protocol, served, certificates) as client,
        sse_on(client, f"/v1/topics/{topic}/stream") as stream,
    ):
        served.herald.lifecycle.begin_shutdown()
        goodbye = await stream.next_event()
        with pytest.raises(EOFError):
            await stream.next()
    assert goodbye.event == "shutdown" and goodbye.json()["cursor"] == goodbye.id


async def test_a_stalled_http3_reader_is_cut_and_the_others_keep_receiving(
    function_server_factory: StartServer, certificates: Certificates, topic: str
) -> None:
    # aioquic would keep whatever the reader's flow control holds back, without limit, and
    # no write would wait: Herald's send deadline must cut it all the same.
    served = await serve_all(
        function_server_factory,
        certificates,
        topics="it-.*",
        send_timeout_s="1",
        subscriber_queue_size="100000",
        max_body_bytes="4194304",
    )
    path = f"/v1/topics/{topic}/stream?key=k"
    async with (
        h3_connection(served.quic_url, certificates.ca_file) as stalled_quic,
        httpx.AsyncClient(base_url=served.quic_url, transport=stalled_quic) as stalled,
        sse_on(stalled, path),
        client_over("h3", served, certificates) as reader,
        sse_on(reader, path) as stream,
        client_over("http/1.1", served, certificates) as publisher,
    ):
        stalled_quic.stall()  # from here it takes no datagram, so it acknowledges nothing
        n = 0
        async with asyncio.timeout(60):
            while not await lagging_total(publisher):
                batch = [{"key": "k", "data": {"n": n + i, "pad": "x" * 4000}} for i in range(100)]
                answer = await publisher.post(f"/v1/topics/{topic}/events", json=batch)
                assert answer.status_code == 201, answer.text
                for i in range(100):  # the other reader keeps up, batch by batch
                    assert (await stream.next_event()).json()["data"]["n"] == n + i
                n += 100
        # Herald let go of the stalled stream (and reset it); the reader's is still open.
        async with asyncio.timeout(10):
            while await open_streams(publisher) != 1:  # noqa: ASYNC110 (another's answer)
                await asyncio.sleep(0.05)


async def lagging_total(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    line = next(x for x in text.splitlines() if x.startswith("herald_subscribers_lagging_total"))
    return float(line.split()[-1])


async def test_websocket_stays_on_tcp(strict: InProcess, certificates: Certificates) -> None:
    async with client_over("h3", strict, certificates) as client:
        refused = await client.request(
            "CONNECT",
            "/v1/ws",
            headers={"Sec-WebSocket-Version": "13", "Sec-WebSocket-Protocol": "herald.v1.json"},
            extensions={"protocol": "websocket"},
        )
    assert refused.status_code == 403


async def test_a_bad_websocket_request_over_http3_harms_no_one_else(
    strict: InProcess, certificates: Certificates
) -> None:
    async with client_over("h3", strict, certificates) as other:
        # Data right behind the request: Hypercorn answers it with headers that HTTP/3
        # forbids, then fails on the stream; the bad client's connection ends, no one else's.
        with pytest.raises(httpx.RemoteProtocolError):
            async with client_over("h3", strict, certificates) as client:
                await client.request(
                    "CONNECT",
                    "/v1/ws",
                    headers={"Sec-WebSocket-Version": "13"},
                    content=b"not a frame",
                    extensions={"protocol": "websocket"},
                )
        assert (await other.get("/readyz")).status_code == 200
        async with client_over("h3", strict, certificates) as newcomer:
            assert (await newcomer.get("/readyz")).status_code == 200
