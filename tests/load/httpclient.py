"""A keep-alive HTTP/1.1 client on asyncio streams, for the publishing and snapshot load.

httpx spends more CPU per request than the server under test; this one only writes a request
and reads a Content-Length (or chunked) response.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time

HEAD_END = b"\r\n\r\n"


class HttpConnection:
    """One keep-alive HTTP/1.1 connection; reconnects when the server closed it."""

    # Hypercorn closes keep-alive connections idle for 5 s: reconnect before that.
    IDLE_LIMIT_S = 4.0

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._last_used = 0.0

    async def _connect(self) -> None:
        await self.close()
        self._reader, self._writer = await asyncio.open_connection(
            self.host, self.port, ssl=self.tls
        )

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> tuple[int, dict[str, str], bytes]:
        fresh = (
            self._writer is None
            or self._writer.is_closing()
            or time.monotonic() - self._last_used > self.IDLE_LIMIT_S
        )
        if fresh:
            await self._connect()
        try:
            return await self._exchange(method, path, headers or {}, body)
        except (ConnectionError, asyncio.IncompleteReadError):
            if fresh:
                raise
            # The server closed the kept-alive connection before reading this request.
            await self._connect()
            return await self._exchange(method, path, headers or {}, body)

    async def _exchange(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        reader, writer = self._reader, self._writer
        assert reader is not None and writer is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await reader.readuntil(HEAD_END)
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        response_headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            response_headers[name.strip().lower()] = value.strip()
        content = b""
        if status not in (204, 304) and status >= 200:
            if "content-length" in response_headers:
                content = await reader.readexactly(int(response_headers["content-length"]))
            elif "chunked" in response_headers.get("transfer-encoding", ""):
                content = await _read_chunked(reader)
        self._last_used = time.monotonic()
        if response_headers.get("connection", "").lower() == "close":
            await self.close()
        return status, response_headers, content


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    pieces: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(pieces)
        pieces.append(await reader.readexactly(size))
        await reader.readexactly(2)
