"""Who may read and write what, over every transport, against a server that enforces it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ..clients import sse, ws_recv, ws_recv_op, ws_send
from ..serving import InProcess, StartServer
from ..tokens import SECRET, token
from .conftest import APP, SECURED


@pytest.fixture(scope="module")
async def secure(module_server_factory: StartServer) -> AsyncIterator[InProcess]:
    yield await module_server_factory(**SECURED, max_subscriptions="3")


@pytest.fixture
def private() -> str:
    return f"priv-{uuid.uuid4().hex[:12]}"


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


async def request(server: InProcess, method: str, path: str, **kwargs: object) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        return await client.request(method, path, **kwargs)  # type: ignore[arg-type]


# -- publishing -----------------------------------------------------------------------------


async def test_publishing_needs_a_token_with_a_publish_grant(secure: InProcess, topic: str) -> None:
    path = f"/v1/topics/{topic}/events"
    body = {"data": 1, "key": "a"}
    anonymous = await request(secure, "POST", path, json=body)
    reader = await request(secure, "POST", path, json=body, headers=bearer(token(subscribe=["*"])))
    wrong_key = await request(
        secure, "POST", path, json=body, headers=bearer(token(publish=[f"{topic}/b"]))
    )
    writer = await request(
        secure, "POST", path, json=body, headers=bearer(token(publish=["it-*"], create=["it-*"]))
    )
    assert anonymous.status_code == 401
    assert anonymous.json()["type"] == "urn:herald:problem:unauthenticated"
    assert reader.status_code == wrong_key.status_code == 403
    assert writer.status_code == 201


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (lambda: token(publish=["*"], ttl=-60), "expired"),
        (
            lambda: token(publish=["*"], secret="wrong-secret-of-sufficient-length-0123456789"),
            "not valid",
        ),
        (lambda: "garbage", "not valid"),
    ],
)
async def test_bad_tokens_are_401_and_never_echoed(
    secure: InProcess, topic: str, raw: object, reason: str
) -> None:
    sent = raw()  # type: ignore[operator]
    response = await request(
        secure, "POST", f"/v1/topics/{topic}/events", json={"data": 1}, headers=bearer(sent)
    )
    assert response.status_code == 401
    assert reason in response.json()["detail"]
    assert sent not in response.text


# -- reading private topics -----------------------------------------------------------------


async def test_private_reads_need_a_token_and_the_key_it_grants(
    secure: InProcess, private: str
) -> None:
    alice = token("alice", subscribe=[f"{private}/{{sub}}"])
    for endpoint in ("snapshot", "events"):
        base = f"/v1/topics/{private}/{endpoint}"
        anonymous = await request(secure, "GET", base, params={"key": "alice"})
        own = await request(secure, "GET", base, params={"key": "alice"}, headers=bearer(alice))
        other = await request(secure, "GET", base, params={"key": "bob"}, headers=bearer(alice))
        whole = await request(secure, "GET", base, headers=bearer(alice))
        assert anonymous.status_code == 401, endpoint
        assert own.status_code == 200, endpoint
        assert other.status_code == whole.status_code == 403, endpoint
        # Token-protected answers are never kept by a shared cache, nor named for purging.
        assert own.headers["cache-control"] == "private, no-store"
        assert "surrogate-key" not in own.headers and "cache-tag" not in own.headers
        for refused in (anonymous, other):
            assert refused.headers["cache-control"] == "no-store", endpoint


async def test_private_stream_with_access_token_in_the_url(secure: InProcess, private: str) -> None:
    alice = token("alice", subscribe=[f"{private}/{{sub}}"])
    writer = token("backend", publish=["priv-*"], create=["priv-*"])
    url = f"/v1/topics/{private}/stream"
    async with (
        httpx.AsyncClient(base_url=secure.base_url, timeout=30) as client,
        client.stream("GET", url, params={"key": "alice", "access_token": alice}) as stream,
    ):
        assert stream.status_code == 200
        lines = stream.aiter_lines()
        assert (await anext(lines)).startswith("retry:")
        await client.post(
            f"/v1/topics/{private}/events",
            json={"data": "hi", "key": "alice"},
            headers=bearer(writer),
        )
        received = [await anext(lines) for _ in range(4)]
    assert any(line.startswith("data:") and '"hi"' in line for line in received)
    refused = await request(secure, "GET", url, params={"key": "bob", "access_token": alice})
    assert refused.status_code == 403


async def test_websocket_subscribe_to_another_users_key_is_an_error_op(
    secure: InProcess, private: str
) -> None:
    alice = token("alice", subscribe=[f"{private}/{{sub}}"])
    async with connect(f"{secure.ws_url}/v1/ws?access_token={alice}") as ws:
        await ws_send(ws, {"op": "subscribe", "topic": private, "key": "bob"})
        refused = await ws_recv(ws)
        await ws_send(ws, {"op": "subscribe", "topic": private, "key": "alice"})
        accepted = await ws_recv(ws)
    assert (refused["op"], refused["code"]) == ("error", "forbidden")
    assert accepted["op"] == "subscribed"


async def test_anonymous_websocket_cannot_read_private_topics(
    secure: InProcess, private: str
) -> None:
    async with connect(f"{secure.ws_url}/v1/ws") as ws:
        await ws_send(ws, {"op": "subscribe", "topic": private})
        refused = await ws_recv(ws)
    assert (refused["op"], refused["code"]) == ("error", "unauthenticated")


async def test_a_websocket_closes_when_its_token_expires(secure: InProcess, topic: str) -> None:
    short = token(subscribe=["*"], ttl=2)
    async with connect(f"{secure.ws_url}/v1/ws?access_token={short}") as ws:
        await ws_send(ws, {"op": "subscribe", "topic": topic})
        await ws_recv_op(ws, "subscribed")
        with pytest.raises(ConnectionClosed) as closed:
            await ws_recv_op(ws, "never")
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


# -- origins ----------------------------------------------------------------------------------


async def test_websocket_from_a_foreign_origin_is_refused(secure: InProcess) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{secure.ws_url}/v1/ws", origin="https://evil.example"):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403
    for allowed in (APP, secure.base_url):
        async with connect(f"{secure.ws_url}/v1/ws", origin=allowed) as ws:  # type: ignore[arg-type]
            await ws_send(ws, {"op": "ping"})
            assert (await ws_recv(ws))["op"] == "pong"


async def test_cookie_credentials_from_a_foreign_origin_are_refused(
    secure: InProcess, private: str
) -> None:
    alice = token("alice", subscribe=[f"{private}/{{sub}}"])
    path = f"/v1/topics/{private}/snapshot?key=alice"
    cookies = {"herald_token": alice}
    async with httpx.AsyncClient(base_url=secure.base_url, cookies=cookies) as client:
        own_page = await client.get(path, headers={"Origin": APP})
        no_page = await client.get(path)
        foreign = await client.get(path, headers={"Origin": "https://evil.example"})
    assert own_page.status_code == no_page.status_code == 200
    assert foreign.status_code == 403


async def test_cors_answers_listed_origins_only(secure: InProcess, topic: str) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    path = f"/v1/topics/{topic}/events"
    allowed = await request(secure, "OPTIONS", path, headers={"Origin": APP, **preflight})
    foreign = await request(
        secure, "OPTIONS", path, headers={"Origin": "https://evil.example", **preflight}
    )
    simple = await request(secure, "GET", f"/v1/topics/{topic}/snapshot", headers={"Origin": APP})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == APP
    assert "Authorization" in allowed.headers["access-control-allow-headers"]
    assert foreign.status_code == 403 and "access-control-allow-origin" not in foreign.headers
    assert simple.headers["access-control-allow-origin"] == APP
    assert "ETag" in simple.headers["access-control-expose-headers"]


# -- limits ----------------------------------------------------------------------------------


async def test_subscriptions_per_connection_are_limited(secure: InProcess, topic: str) -> None:
    async with connect(f"{secure.ws_url}/v1/ws") as ws:
        for n in range(3):
            await ws_send(ws, {"op": "subscribe", "topic": f"{topic}-{n}"})
            await ws_recv_op(ws, "subscribed")
        await ws_send(ws, {"op": "subscribe", "topic": f"{topic}-4"})
        refused = await ws_recv(ws)
    assert (refused["op"], refused["code"]) == ("error", "too-many-subscriptions")


async def test_demo_page_has_a_content_security_policy(secure: InProcess) -> None:
    page = await request(secure, "GET", "/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert "<script" in page.text and "<script>" not in page.text  # no inline script


async def test_no_hsts_over_plain_http(secure: InProcess) -> None:
    response = await request(secure, "GET", "/healthz")
    assert "strict-transport-security" not in response.headers


# -- deny by default ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def strict(module_server_factory: StartServer) -> AsyncIterator[InProcess]:
    """Public: what matches ``^pub`` in full (that is: only "pub"). Nothing else."""
    yield await module_server_factory(
        topics=".*", public_topics="^pub", publish_open="false", jwt_secret=SECRET, jwt_leeway_s="0"
    )


async def test_a_topic_nobody_declared_public_needs_a_token_everywhere(strict: InProcess) -> None:
    # "^priv" written as a prefix once left privnotes public: now nothing is, unless it matches.
    backend = token("backend", publish=["*"], create=["*"])
    published = await request(
        strict,
        "POST",
        "/v1/topics/privnotes/events",
        json={"data": 1, "key": "bob"},
        headers=bearer(backend),
    )
    assert published.status_code == 201, published.text
    for path in ("snapshot", "events", "stream"):
        refused = await request(strict, "GET", f"/v1/topics/privnotes/{path}?key=bob")
        assert refused.status_code == 401, path
        assert refused.headers["cache-control"] == "no-store"
    async with connect(f"{strict.ws_url}/v1/ws") as ws:
        await ws_send(ws, {"op": "subscribe", "topic": "privnotes", "key": "bob"})
        assert (await ws_recv(ws))["code"] == "unauthenticated"
    # A keyed grant now means something on every topic.
    alice = bearer(token("alice", subscribe=["notifications/{sub}"]))
    mine = await request(
        strict, "GET", "/v1/topics/notifications/snapshot?key=alice", headers=alice
    )
    theirs = await request(
        strict, "GET", "/v1/topics/notifications/snapshot?key=bob", headers=alice
    )
    assert (mine.status_code, theirs.status_code) == (200, 403)
    assert mine.headers["cache-control"] == "private, no-store"
    # The declared one is public, and cached as such.
    public = await request(strict, "GET", "/v1/topics/pub/snapshot")
    assert public.status_code == 200 and public.headers["cache-control"].startswith("public")


async def test_creating_a_topic_needs_its_own_grant(strict: InProcess) -> None:
    name = f"made-{uuid.uuid4().hex[:8]}"
    publisher = bearer(token("p", publish=["*"]))
    creator = bearer(token("c", publish=["*"], create=["made-*"]))
    refused = await request(
        strict, "POST", f"/v1/topics/{name}/events", json={"data": 1}, headers=publisher
    )
    assert refused.status_code == 403 and "creating" in refused.json()["detail"]
    created = await request(
        strict, "POST", f"/v1/topics/{name}/events", json={"data": 1}, headers=creator
    )
    assert created.status_code == 201
    # Once it exists, a publish grant is enough.
    again = await request(
        strict, "POST", f"/v1/topics/{name}/events", json={"data": 2}, headers=publisher
    )
    assert again.status_code == 201


async def test_topics_created_an_hour_are_capped_per_subject(
    function_server_factory: StartServer,
) -> None:
    capped = await function_server_factory(
        topics=".*", publish_open="false", jwt_secret=SECRET, topic_creations_per_hour="2"
    )
    creator = bearer(token("c", publish=["*"], create=["*"]))
    answers = [
        (
            await request(
                capped,
                "POST",
                f"/v1/topics/n{n}-{uuid.uuid4().hex[:6]}/events",
                json={"data": n},
                headers=creator,
            )
        ).status_code
        for n in range(3)
    ]
    assert answers == [201, 201, 429]


async def test_an_sse_stream_ends_with_token_expired_when_its_token_does(
    strict: InProcess,
) -> None:
    # Two seconds: exp is whole seconds, so a one-second token may be expired on arrival.
    short = token("alice", subscribe=["*"], ttl=2)
    path = f"/v1/topics/inbox-{uuid.uuid4().hex[:6]}/stream?access_token={short}"
    async with sse(strict.base_url, path) as stream:
        ending = await stream.next_event()
        with pytest.raises(EOFError):
            await stream.next()
    assert ending.event == "token-expired"
    assert ending.id and ending.json()["cursor"] == ending.id


async def test_a_held_long_poll_ends_when_its_token_does(strict: InProcess) -> None:
    short = token("alice", subscribe=["*"], ttl=2)
    path = f"/v1/topics/inbox-{uuid.uuid4().hex[:6]}/events"
    answer = await request(strict, "GET", path, params={"wait": "30"}, headers=bearer(short))
    assert answer.status_code == 401
    assert answer.json()["type"] == "urn:herald:problem:token-expired"


async def test_any_origin_is_answered_without_credentials(
    function_server_factory: StartServer, topic: str
) -> None:
    anyone = await function_server_factory(topics="it-.*", allowed_origins="*")
    answer = await request(
        anyone, "GET", f"/v1/topics/{topic}/snapshot", headers={"Origin": "https://x.example"}
    )
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in answer.headers
