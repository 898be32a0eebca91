"""schemathesis against schemas/openapi.yaml on a running Herald.

Every documented operation except the endless ones (the SSE stream and the WebSocket) gets
generated requests, valid and invalid, and each answer must: not be a 5xx, carry a status the
operation documents, a documented Content-Type, a body matching the documented schema, and
the documented headers. Topic names are mostly drawn from exposed (``fz<run>-``) names so that
requests reach the handlers rather than only the 404 of unexposed topics.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest
import schemathesis
from hypothesis import strategies as st

from ..clients import publish
from ..processes import HeraldProcess
from .conftest import LONG_RUN, OPENAPI_PATH, PREFIX, examples

# A few exposed names (each becomes a Kafka topic on its first publish: keep them few).
EXPOSED_TOPICS = [f"{PREFIX}st-a", f"{PREFIX}st-b", f"{PREFIX}st.c_d", f"{PREFIX}9"]
EXCLUDED_OPERATIONS = ["streamEvents", "webSocket"]  # endless: tested in other modules
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
]


def _load_schema() -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict(
        {
            # Fixed seed and derandomized generation in CI; a long run explores afresh.
            **({} if LONG_RUN else {"seed": 20261124}),
            "request-timeout": 15,
            "generation": {
                "max-examples": examples(50),
                "deterministic": not LONG_RUN,
                "database": "none",
            },
            "checks": {
                "enabled": False,
                **{name: {"enabled": True} for name in CHECKS},
            },
            "operations": [
                {
                    # SPEC: /openapi.yaml documents `application/yaml` with `schema: {type:
                    # string}`, but an application/yaml body is a YAML document (a mapping
                    # here), so the response schema cannot match. Fix in schemas/openapi.yaml
                    # (`schema: {type: object}`), then drop this.
                    "include-operation-id": "openapi",
                    "checks": {"response_schema_conformance": {"enabled": False}},
                }
            ],
        }
    )
    loaded = schemathesis.openapi.from_path(OPENAPI_PATH, config=config)

    @loaded.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
        # Mostly a topic that is exposed: the handlers behind the 404 get fuzzed too.
        if not path_parameters or "topic" not in path_parameters:
            return st.just(path_parameters)
        exposed = st.sampled_from(EXPOSED_TOPICS).map(lambda t: {**path_parameters, "topic": t})
        return st.one_of(st.just(path_parameters), exposed, exposed, exposed)

    @loaded.hook
    def map_query(context: Any, query: dict[str, Any] | None) -> dict[str, Any] | None:
        # A long-poll holds a request for `wait` seconds and the server allows 1, so most
        # generated values would stop at the 400 before the handler: make most of them 0.
        if query and isinstance(query.get("wait"), int) and query["wait"] % 4:
            query["wait"] = 0
        return query

    return loaded.exclude(operation_id=EXCLUDED_OPERATIONS)


@schemathesis.serializer("application/msgpack")
def _msgpack(context: schemathesis.SerializationContext, value: Any) -> dict[str, Any]:
    try:
        return {"data": msgpack.packb(value, use_bin_type=True)}
    except (TypeError, ValueError, OverflowError):
        # Beyond msgpack (an integer over 64 bits): the server gets bytes that do not parse.
        return {"data": json.dumps(value).encode()}


# Loaded eagerly: schemathesis.pytest.from_fixture (a schema from a fixture) fails on pytest
# 9.2 (it sets ``request.node._nodeid``, which pytest 9.2 no longer has); the base URL of the
# running server is given per call instead.
schema = _load_schema()


@pytest.fixture(scope="module", autouse=True)
async def topics_with_events(fuzz_server: HeraldProcess) -> None:
    """The exposed topics exist in Kafka and hold events (keyed and not) before any case."""
    for topic in EXPOSED_TOPICS:
        batch = [{"data": n} for n in range(4)] + [{"key": "user-42", "data": "k"}]
        await publish(fuzz_server.base_url, topic, batch)


@schema.parametrize()
def test_every_answer_conforms_to_openapi(
    case: schemathesis.Case, fuzz_server: HeraldProcess
) -> None:
    case.call_and_validate(base_url=fuzz_server.base_url)
