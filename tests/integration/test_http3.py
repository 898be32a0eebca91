"""HTTP/3 from outside: ``herald serve --workers 2`` with HERALD_QUIC_BIND, over real Kafka, and
aioquic's client over loopback UDP: streams, snapshots, long-polls, publishing, readiness."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from ..clients import sse
from ..h3_client import h3_connection
from ..processes import QuicHerald, quic_herald, serving


@pytest.fixture(scope="module")
async def quic_server(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[QuicHerald]:
    herald = quic_herald(
        kafka_bootstrap, tmp_path_factory.mktemp("http3"), ["--workers", "2"], topics="it-.*"
    )
    async with serving(herald.process):
        # Ready over TCP is one worker's word; the QUIC worker may still be reaching Kafka.
        await herald.process.wait_positioned(2)
        yield herald


async def test_every_endpoint_answers_over_http3(quic_server: QuicHerald, topic: str) -> None:
    url = quic_server.process.quic_url
    async with (
        h3_connection(url, quic_server.certificates.ca_file) as quic,
        httpx.AsyncClient(base_url=url, transport=quic, timeout=30) as client,
    ):
        ready = await client.get("/readyz")
        assert (ready.status_code, ready.http_version) == (200, "HTTP/3"), ready.text
        before = await client.get(f"/v1/topics/{topic}/snapshot?key=k")
        assert before.status_code == 200 and before.json()["events"] == []
        stream_path = f"/v1/topics/{topic}/stream?key=k"
        async with sse(url, stream_path, transport=quic) as stream:
            published = await client.post(
                f"/v1/topics/{topic}/events", json={"key": "k", "type": "t", "data": {"n": 1}}
            )
            assert (published.status_code, published.http_version) == (201, "HTTP/3")
            [answer] = published.json()["events"]
            event = await stream.next_event()
        assert event.id == answer["id"] and event.event == "t"
        assert event.json()["data"] == {"n": 1}

        # Snapshots keep their cache headers and validators over HTTP/3.
        snapshot = await client.get(f"/v1/topics/{topic}/snapshot?key=k")
        assert [e["id"] for e in snapshot.json()["events"]] == [answer["id"]]
        assert snapshot.headers["etag"] != before.headers["etag"]
        assert "max-age" in snapshot.headers["cache-control"]
        etag = snapshot.headers["etag"]
        unchanged = await client.get(
            f"/v1/topics/{topic}/snapshot?key=k", headers={"If-None-Match": etag}
        )
        assert (unchanged.status_code, unchanged.headers["etag"]) == (304, etag)

        # A long-poll from the cursor before the event answers with it at once.
        cursor = before.json()["cursor"]
        page = await client.get(f"/v1/topics/{topic}/events?key=k&after={cursor}&wait=10")
        assert page.status_code == 200
        assert [e["id"] for e in page.json()["events"]] == [answer["id"]]

        # Malformed input is a 4xx over HTTP/3 as over TCP.
        bad = await client.get(f"/v1/topics/{topic}/events?after=not-a-cursor")
        assert bad.status_code == 400


async def test_every_worker_advertises_http3_on_tcp(quic_server: QuicHerald) -> None:
    # Connections go to either worker; only the first serves QUIC, both advertise it.
    expected = f'h3=":{quic_server.process.port}"; ma=86400'
    for _ in range(6):
        async with httpx.AsyncClient(verify=quic_server.process.verify) as client:
            response = await client.get(f"{quic_server.process.base_url}/healthz")
        assert response.headers["alt-svc"] == expected
