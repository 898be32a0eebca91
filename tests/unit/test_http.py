"""service/transports/http.py: an ASGI request read as Quart's Request reads it."""

from __future__ import annotations

from typing import Any

from service.transports.http import Request


def scope(headers: list[tuple[bytes, bytes]], query: bytes = b"", **more: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "scheme": "http",
        "headers": headers,
        "query_string": query,
        "server": ("127.0.0.1", 8080),
        "client": ("10.0.0.7", 50000),
        **more,
    }


def test_headers_are_found_by_any_case_and_the_first_value_wins() -> None:
    request = Request(scope([(b"authorization", b"Bearer a"), (b"authorization", b"b")]))
    assert request.headers.get("Authorization") == "Bearer a"
    assert request.headers.get("AUTHORIZATION") == "Bearer a"
    assert request.headers.get("Origin") is None


def test_header_values_are_latin_1_as_in_werkzeug() -> None:
    request = Request(scope([(b"x-name", "é".encode("latin-1"))]))
    assert request.headers.get("X-Name") == "é"


def test_query_arguments_are_decoded_and_the_first_wins() -> None:
    request = Request(scope([], b"access_token=a%2Bb&access_token=c&empty="))
    assert request.args == {"access_token": "a+b", "empty": ""}


def test_cookies_come_from_the_cookie_header() -> None:
    request = Request(scope([(b"cookie", b"herald_token=t1; other=2")]))
    assert request.cookies["herald_token"] == "t1"
    assert dict(Request(scope([])).cookies) == {}


def test_host_scheme_and_peer() -> None:
    request = Request(scope([(b"host", b"example.org:8080")], scheme="https"))
    assert (request.scheme, request.host, request.remote_addr) == (
        "https",
        "example.org:8080",
        "10.0.0.7",
    )
    # Without a Host header (HTTP/1.0), the server's own address, as werkzeug gives it.
    assert Request(scope([])).host == "127.0.0.1:8080"
    assert Request(scope([], client=None)).remote_addr is None


def test_media_type_is_lower_case_without_parameters() -> None:
    request = Request(scope([(b"content-type", b"Application/JSON; charset=utf-8")]))
    assert request.mimetype == "application/json"
    assert Request(scope([])).mimetype == ""


def test_content_length_only_when_well_formed() -> None:
    lengths = [b"12", b"-1", b"1e3", "١٢".encode(), b""]
    found = [Request(scope([(b"content-length", v)])).content_length for v in lengths]
    assert found == [12, None, None, None, None]
    assert Request(scope([])).content_length is None
