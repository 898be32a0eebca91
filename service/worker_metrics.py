"""One /metrics for every worker of ``herald serve --workers N``.

The kernel hands a scrape to any one worker, and each worker counts only its own
connections and events. So every worker also answers its figures on a Unix socket in a
directory the parent made for them, and the worker that serves /metrics gathers its
siblings' figures there and adds a ``worker`` label to each series (sum them in queries).
Asking at scrape time keeps the figures fresh and costs nothing between scrapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric, Sample
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# A sibling that does not answer within this is left out of the scrape (it may be stopping).
_ASK_TIMEOUT_S = 2.0
_SUFFIX = ".metrics.sock"


class WorkerMetrics:
    """This worker's figures on its socket in ``directory``, and everyone's for /metrics."""

    def __init__(self, directory: Path, index: int, own: Callable[[], bytes]) -> None:
        self._directory = directory
        self._index = index
        self._own = own
        self._server: asyncio.AbstractServer | None = None

    @property
    def _path(self) -> Path:
        return self._directory / f"{self._index}{_SUFFIX}"

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._answer, path=str(self._path))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()

    async def _answer(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(self._own())
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def exposition(self) -> bytes:
        """Every worker's figures, each series labelled with its worker's index."""
        others = sorted(p for p in self._directory.glob(f"*{_SUFFIX}") if p != self._path)
        answers = await asyncio.gather(*(_ask(path) for path in others))
        texts = {self._index: self._own()}
        for path, text in zip(others, answers, strict=True):
            if text is not None:
                texts[int(path.name.removesuffix(_SUFFIX))] = text
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Merged(texts))
        return generate_latest(registry)


async def _ask(path: Path) -> bytes | None:
    try:
        async with asyncio.timeout(_ASK_TIMEOUT_S):
            reader, writer = await asyncio.open_unix_connection(str(path))
            try:
                return await reader.read()
            finally:
                writer.close()
    except (OSError, TimeoutError) as exc:
        log.warning("metrics: worker socket %s did not answer: %r", path.name, exc)
        return None


class _Merged(Collector):
    """The families of every worker's exposition, one family per name."""

    def __init__(self, texts: dict[int, bytes]) -> None:
        self._texts = texts

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for index, text in sorted(self._texts.items()):
            for family in text_string_to_metric_families(text.decode()):
                into = merged.get(family.name)
                if into is None:
                    into = merged[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit
                    )
                into.samples.extend(_labelled(family.samples, str(index)))
        yield from merged.values()


def _labelled(samples: Iterable[Sample], worker: str) -> Iterator[Sample]:
    for sample in samples:
        labels = {**sample.labels, "worker": worker}
        yield Sample(sample.name, labels, sample.value, sample.timestamp, sample.exemplar)
