"""WebSocket extensions Herald takes part in: none.

Hypercorn has no setting for them: it offers wsproto's permessage-deflate to every client
that asks, and wsproto inflates a compressed frame without bound before any size check (a
64 KB frame can become 64 MB). Herald never compresses what it sends (its frames are built
once and shared), so it declines compression instead: wsproto's documented extension hook,
``Extension.accept``, answers "no" to every offer. A client that compresses anyway breaks
the protocol and is closed (1002) before anything is inflated.
"""

from __future__ import annotations

from wsproto.extensions import PerMessageDeflate


def _decline(_extension: PerMessageDeflate, _offer: str) -> None:
    return None


def decline_compression() -> None:
    """Make every WebSocket handshake of this process decline permessage-deflate."""
    PerMessageDeflate.accept = _decline  # type: ignore[method-assign,assignment]
