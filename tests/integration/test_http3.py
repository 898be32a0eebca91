"""HTTP/3 beside HTTP/1.1 and HTTP/2 (HERALD_QUIC_BIND): a running Herald, aioquic's client."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx

from ..certificates import self_signed
from ..h3_client import H3Client, free_udp_port, h3_connection
from ..processes import HeraldProcess, serving


def quic_herald(bootstrap: str, directory: Path, args: list[str] | None = None) -> HeraldProcess:
    cert, key = self_signed(directory)
    return HeraldProcess(
        bootstrap,
        directory / "herald.log",
        args,
        topics="it-.*",
        tls_cert=str(cert),
        tls_key=str(key),
        quic_bind=f"127.0.0.1:{free_udp_port()}",
    )


def quic_port(server: HeraldProcess) -> int:
    return int(server.env["HERALD_QUIC_BIND"].rsplit(":", 1)[1])


async def publish(client: H3Client, topic: str, data: object) -> dict[str, object]:
    response = await client.request(
        "POST",
        f"/v1/topics/{topic}/events",
        {"content-type": "application/json"},
        json.dumps({"data": data}).encode(),
    )
    assert response.status == 201
    [answer] = json.loads(await response.body())["events"]
    assert isinstance(answer, dict)
    return answer


async def test_readiness_a_stream_publishing_and_a_cacheable_snapshot_over_http3(
    kafka_bootstrap: str, tmp_path: Path, topic: str
) -> None:
    async with serving(quic_herald(kafka_bootstrap, tmp_path)) as server:
        assert server.certificate is not None
        async with h3_connection(quic_port(server), Path(server.certificate)) as client:
            ready = await client.request("GET", "/readyz")
            assert ready.status == 200
            stream = await client.request(
                "GET", f"/v1/topics/{topic}/stream", {"accept": "text/event-stream"}
            )
            assert stream.status == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            received = b""
            while b"retry:" not in received:  # the stream's first block: it is subscribed
                received += await stream.chunk()
            published = await publish(client, topic, "over quic")
            while b'"over quic"' not in received:
                chunk = await stream.chunk()
                assert chunk, "the stream ended"
                received += chunk
            data = next(
                line.removeprefix("data: ")
                for line in received.decode().splitlines()
                if line.startswith("data: ") and "over quic" in line
            )
            assert json.loads(data)["offset"] == published["offset"]
            # Delivered, so in the topic's ring: the snapshot holds it, cacheable as over TCP.
            snapshot = await client.request("GET", f"/v1/topics/{topic}/snapshot")
            assert snapshot.status == 200
            events = json.loads(await snapshot.body())["events"]
            assert [e["offset"] for e in events] == [published["offset"]]
            assert "max-age" in snapshot.headers["cache-control"]
            again = await client.request(
                "GET", f"/v1/topics/{topic}/snapshot", {"if-none-match": snapshot.headers["etag"]}
            )
            assert again.status == 304
            assert await again.body() == b""


async def test_with_workers_the_first_serves_quic_and_every_one_advertises_it(
    kafka_bootstrap: str, tmp_path: Path, topic: str
) -> None:
    herald = quic_herald(kafka_bootstrap, tmp_path, ["--workers", "2"])
    async with serving(herald) as server:
        assert server.certificate is not None
        port = quic_port(server)
        context = ssl.create_default_context(cafile=server.certificate)
        # A new TCP connection each time: the kernel hands them to both workers.
        for _ in range(8):
            async with httpx.AsyncClient(base_url=server.base_url, verify=context) as client:
                response = await client.get("/healthz")
            assert response.headers["alt-svc"] == f'h3=":{port}"; ma=86400'
        async with h3_connection(port, Path(server.certificate)) as client:
            await publish(client, topic, "from a worker")
    assert herald.log().count("HTTP/3 on udp://") == 1
