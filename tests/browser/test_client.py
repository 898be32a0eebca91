"""The client module on its own (/client/herald.js in a page, no demo): subscriptions that
share a topic, resuming from an id, unsubscribing, errors, and batch frames."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, WebSocketRoute

from ..clients import publish
from ..processes import HeraldProcess
from ..serving import StartServer
from ..tokens import SECRET, token
from .demo_page import PATIENCE_MS

# Loads the client into a page of the server's origin and keeps what each subscription sees.
HARNESS = """async ([transports, options]) => {
  const herald = await import("/client/herald.js");
  window.client = herald.connect(location.origin, {
    transports: transports.length ? transports : undefined,
    backoff: {initial: 100, max: 1000},
    ...options,
  });
  window.seen = {};
  window.errors = {};
  window.subs = {};
  window.follow = (name, topic, options) => {
    seen[name] = [];
    errors[name] = [];
    const sub = client.subscribe(topic, options, (event) => seen[name].push(event));
    sub.addEventListener("error", (e) => errors[name].push(e.detail.error.code));
    subs[name] = sub;
  };
}"""


async def load_client(
    page: Page, server: HeraldProcess, *transports: str, **options: object
) -> None:
    await page.goto(f"{server.base_url}/healthz")
    await page.evaluate(HARNESS, [list(transports), options])


async def wait_seen(page: Page, name: str, count: int) -> list[dict[str, Any]]:
    await page.wait_for_function(
        "([name, n]) => seen[name].length >= n", arg=[name, count], timeout=PATIENCE_MS
    )
    shown: list[dict[str, Any]] = await page.evaluate("name => seen[name]", name)
    return shown


async def wait_client_open(page: Page, transport: str) -> None:
    await page.wait_for_function(
        "t => client.state === 'open' && client.transport === t", arg=transport
    )


def data(events: list[dict[str, Any]]) -> list[Any]:
    return [event["data"] for event in events]


@pytest.mark.parametrize("transport", ["websocket", "sse", "longpoll"])
async def test_whole_topic_and_one_key_of_it_each_see_their_events_once(
    page: Page, demo_server: HeraldProcess, feed_topic: str, transport: str
) -> None:
    await load_client(page, demo_server, transport)
    await page.evaluate(
        """topic => { follow("all", topic, {}); follow("mine", topic, {key: "a"}); }""",
        feed_topic,
    )
    await wait_client_open(page, transport)
    published = await publish(
        demo_server.base_url,
        feed_topic,
        [
            {"key": "a", "data": "a1"},
            {"key": "b", "data": "b1"},
            {"key": "a", "data": "a2"},
        ],
    )
    mine = await wait_seen(page, "mine", 2)
    everything = await wait_seen(page, "all", 3)
    # The sentinel: once it arrives, anything sent twice would have arrived before it.
    await publish(demo_server.base_url, feed_topic, {"key": "a", "data": "end"})
    mine = await wait_seen(page, "mine", 3)
    everything = await wait_seen(page, "all", 4)
    assert data(mine) == ["a1", "a2", "end"]
    assert [event["id"] for event in mine[:2]] == [published[0]["id"], published[2]["id"]]
    assert sorted(data(everything)) == ["a1", "a2", "b1", "end"]
    assert data(everything).index("a1") < data(everything).index("a2")


async def test_since_resumes_after_that_event_and_unsubscribe_stops(
    page: Page, demo_server: HeraldProcess, feed_topic: str
) -> None:
    first, *_ = await publish(
        demo_server.base_url, feed_topic, [{"key": "k", "data": n} for n in (1, 2, 3)]
    )
    await load_client(page, demo_server)
    await page.evaluate(
        """([topic, since]) => follow("resumed", topic, {key: "k", since})""",
        [feed_topic, first["id"]],
    )
    assert data(await wait_seen(page, "resumed", 2)) == [2, 3]

    await page.evaluate(
        """topic => {
        subs.resumed.unsubscribe();
        follow("later", topic, {key: "k", snapshot: 0});
    }""",
        feed_topic,
    )
    await wait_client_open(page, "websocket")
    await page.wait_for_function("() => client.state === 'open' && subs.later.cursor")
    await publish(demo_server.base_url, feed_topic, {"key": "k", "data": 4})
    assert data(await wait_seen(page, "later", 1)) == [4]
    assert data(await page.evaluate("() => seen.resumed")) == [2, 3]


async def test_a_refused_subscription_fails_alone(
    page: Page, demo_server: HeraldProcess, feed_topic: str
) -> None:
    await load_client(page, demo_server)
    await page.evaluate(
        """topic => {
        follow("refused", "not-exposed-here", {});
        follow("fine", topic, {});
    }""",
        feed_topic,
    )
    await page.wait_for_function("() => errors.refused.length > 0")
    assert await page.evaluate("() => errors.refused") == ["unknown-topic"]
    await wait_client_open(page, "websocket")
    await publish(demo_server.base_url, feed_topic, {"data": "still here"})
    assert data(await wait_seen(page, "fine", 1)) == ["still here"]


async def test_batch_frames_are_unpacked_in_order(
    context: BrowserContext, page: Page, demo_server: HeraldProcess, feed_topic: str
) -> None:
    """A proxy packs the server's messages three to a ``batch`` frame; nothing changes."""
    offered: list[list[str]] = []
    batches = 0

    def route(ws: WebSocketRoute) -> None:
        offered.append(list(ws.protocols))
        server = ws.connect_to_server()
        pending: list[Any] = []

        def flush() -> None:
            nonlocal batches
            if pending:
                batches += 1
                ws.send(json.dumps({"op": "batch", "messages": pending[:3]}))
                del pending[:3]

        def from_server(frame: str | bytes) -> None:
            message = json.loads(frame)
            pending.extend(message["messages"] if message["op"] == "batch" else [message])
            while len(pending) >= 3:
                flush()
            # What is left goes after a moment, so no message waits for company forever.
            asyncio.get_running_loop().call_later(0.05, flush)

        server.on_message(from_server)
        ws.on_message(server.send)

    await context.route_web_socket("**/v1/ws*", route)
    await load_client(page, demo_server, "websocket")
    await page.evaluate("topic => follow('batched', topic, {key: 'k'})", feed_topic)
    await wait_client_open(page, "websocket")
    async with httpx.AsyncClient(base_url=demo_server.base_url, timeout=30) as client:
        body = [{"key": "k", "data": n} for n in range(20)]
        response = await client.post(f"/v1/topics/{feed_topic}/events", json=body)
        assert response.status_code == 201
    assert data(await wait_seen(page, "batched", 20)) == list(range(20))
    assert offered == [["herald.v1.batch.json", "herald.v1.json"]]
    assert batches > 0


async def test_client_files_are_served_as_what_they_are(demo_server: HeraldProcess) -> None:
    async with httpx.AsyncClient(base_url=demo_server.base_url) as client:
        script = await client.get("/client/herald.js")
        types = await client.get("/client/herald.d.ts")
        again = await client.get(
            "/client/herald.js", headers={"If-None-Match": script.headers["ETag"]}
        )
        missing = await client.get("/client/other.js")
    assert script.status_code == 200 and "export function connect" in script.text
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.headers["cache-control"].startswith("public, max-age=")
    assert script.headers["access-control-allow-origin"] == "*"
    assert script.headers["x-typescript-types"] == "/client/herald.d.ts"
    assert types.status_code == 200 and "export function connect" in types.text
    assert types.headers["content-type"].startswith("application/typescript")
    assert again.status_code == 304
    assert missing.status_code == 404


async def test_a_page_of_another_origin_imports_the_client(
    page: Page, demo_server: HeraldProcess
) -> None:
    """Module scripts are fetched with CORS: the client must allow any page to load it."""
    await page.goto(f"http://localhost:{demo_server.port}/healthz")
    imported = await page.evaluate(
        "async url => typeof (await import(url)).connect",
        f"{demo_server.base_url}/client/herald.js",
    )
    assert imported == "function"


async def test_back_to_websocket_once_it_gets_through(
    context: BrowserContext, page: Page, demo_server: HeraldProcess, feed_topic: str
) -> None:
    """A fallback transport serves until the preferred one is tried again and works."""
    blocked = True

    async def route(ws: WebSocketRoute) -> None:
        if blocked:
            await ws.close(code=1011, reason="blocked by the test")
        else:
            ws.connect_to_server()

    await context.route_web_socket("**/v1/ws*", route)
    await load_client(page, demo_server, upgradeAfter=500)
    await page.evaluate("topic => follow('switching', topic, {key: 'k'})", feed_topic)
    await wait_client_open(page, "sse")
    await publish(demo_server.base_url, feed_topic, [{"key": "k", "data": n} for n in (1, 2)])
    await wait_seen(page, "switching", 2)
    blocked = False
    await wait_client_open(page, "websocket")
    await publish(demo_server.base_url, feed_topic, [{"key": "k", "data": n} for n in (3, 4)])
    assert data(await wait_seen(page, "switching", 4)) == [1, 2, 3, 4]
    await publish(demo_server.base_url, feed_topic, {"key": "k", "data": "end"})
    assert data(await wait_seen(page, "switching", 5)) == [1, 2, 3, 4, "end"]


@pytest.fixture(scope="module")
async def private_server(module_server_factory: StartServer) -> HeraldProcess:
    """Topics ``priv-*`` need a token to read (nothing is declared public); publishing always
    does."""
    return await module_server_factory(
        topics="priv-.*", public_topics="", publish_open="false", jwt_secret=SECRET
    )


@pytest.mark.parametrize("transport", ["websocket", "sse", "longpoll"])
async def test_a_token_opens_private_topics_on_every_transport(
    page: Page, private_server: HeraldProcess, user: str, transport: str
) -> None:
    topic = f"priv-{user}"
    grant = f"{topic}/{{sub}}"
    issued = token(user, subscribe=[grant], publish=[grant], create=[grant.split("/")[0]])
    await load_client(page, private_server, transport, token=issued)
    await page.evaluate(
        """([topic, user]) => {
            follow("mine", topic, {key: user});
            follow("theirs", topic, {key: "someone-else"});
        }""",
        [topic, user],
    )
    await page.wait_for_function("() => errors.theirs.length > 0")
    assert await page.evaluate("() => errors.theirs") == ["forbidden"]
    await wait_client_open(page, transport)
    published = await page.evaluate(
        "([topic, user]) => client.publish(topic, 'for me', {key: user})", [topic, user]
    )
    mine = await wait_seen(page, "mine", 1)
    assert [event["id"] for event in mine] == [published["id"]]
    assert data(mine) == ["for me"]
