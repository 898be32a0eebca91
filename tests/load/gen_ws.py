"""WebSocket subscribers as a load generator: ``python -m tests.load.gen_ws --help``.

Each connection subscribes once, to the whole topic or (with ``--keys``) to its own key.
"""

from __future__ import annotations

import argparse

from .control import MAX_LIFETIME_S, run_generator
from .subscriber_gen import serve_subscribers
from .subscribers import Subscriber, WsSubscriber
from .tally import Tally

SUBPROTOCOLS = {
    "json": "herald.v1.json",
    "msgpack": "herald.v1.msgpack",
    "batch-json": "herald.v1.batch.json",
    "batch-msgpack": "herald.v1.batch.msgpack",
}


def key_name(index: int) -> str:
    """The key of subscriber ``index`` in keyed scenarios (publishers use the same names)."""
    return f"user-{index:05d}"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.load.gen_ws")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--format", choices=sorted(SUBPROTOCOLS), default="json")
    parser.add_argument(
        "--first-key",
        type=int,
        default=None,
        help="connection i subscribes to key user-<first-key + i> (default: the whole topic)",
    )
    parser.add_argument(
        "--topics-each",
        type=int,
        default=0,
        help="connection i subscribes to this many of --topic-count topics <topic>-NNNNN, "
        "from number (first-connection + i) x topics-each on (default: --topic itself)",
    )
    parser.add_argument("--topic-count", type=int, default=0)
    parser.add_argument("--first-connection", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--lifetime", type=float, default=MAX_LIFETIME_S)
    return parser.parse_args()


async def main() -> None:
    args = parse_args()
    tally = Tally()
    host = "127.0.0.1"

    def factory(index: int) -> Subscriber:
        if args.topics_each:
            first = (args.first_connection + index) * args.topics_each
            ops: list[dict[str, object]] = [
                {"op": "subscribe", "topic": f"{args.topic}-{number % args.topic_count:05d}"}
                for number in range(first, first + args.topics_each)
            ]
            return WsSubscriber(tally, host, args.port, SUBPROTOCOLS[args.format], *ops)
        subscribe: dict[str, object] = {"op": "subscribe", "topic": args.topic}
        if args.first_key is not None:
            subscribe["key"] = key_name(args.first_key + index)
        return WsSubscriber(tally, host, args.port, SUBPROTOCOLS[args.format], subscribe)

    await serve_subscribers(
        factory, tally, host, args.port, args.connections, args.concurrency, args.lifetime
    )


if __name__ == "__main__":
    run_generator(main)
