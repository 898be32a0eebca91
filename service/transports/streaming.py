"""What the streaming routes (Server-Sent Events, WebSocket, long-polls) are built from."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Settings
from ..metrics import Metrics
from ..reads import Reads
from ..streams import Streams
from .fast_path import FastPath
from .http import Answers
from .identity import Gate


@dataclass(frozen=True, slots=True)
class StreamParts:
    """Who may read, what they read, the open streams, how to answer, and the fast path."""

    settings: Settings
    gate: Gate
    reads: Reads
    streams: Streams
    answers: Answers
    metrics: Metrics
    # None: every frame goes through plain ASGI (see fast_path).
    fast: FastPath | None
