"""The WebSocket hub: every open `/ws` connection gets every painting event as small JSON.

    hub.publish({"type": "painting.progress", "id": ..., "iteration": 3, ...})

Events never carry image bytes, only image ids (the page fetches `/api/images/{id}`). A connection
is accepted only from an allowed `Origin` (by default the page's own origin: the one the `Host`
header names); others are refused before the handshake completes (HTTP 403). A connection that
cannot keep up (its queue is full) is closed rather than letting memory grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit

from starlette.websockets import WebSocket, WebSocketDisconnect

log = logging.getLogger("gallery.hub")

QUEUE_SIZE = 1000
_CLOSE = object()


def origin_allowed(origin: str | None, host: str | None, allowed: Collection[str]) -> bool:
    """Whether a WebSocket from `origin` may connect: in `allowed`, or (when empty) same as `host`."""
    if not origin:
        return False  # every browser sends Origin; a page's script cannot remove it
    origin = origin.rstrip("/")
    if allowed:
        return origin in {a.rstrip("/") for a in allowed}
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and bool(host) and parts.netloc.lower() == (host or "").lower()


class Hub:
    """Fan-out of painting events to the open WebSocket connections."""

    def __init__(self, allowed_origins: Collection[str] = ()) -> None:
        self.allowed_origins = tuple(allowed_origins)
        self._queues: set[asyncio.Queue] = set()

    @property
    def connections(self) -> int:
        return len(self._queues)

    def publish(self, event: dict[str, Any]) -> None:
        text = json.dumps(event, separators=(",", ":"), allow_nan=False)
        for queue in list(self._queues):
            try:
                queue.put_nowait(text)
            except asyncio.QueueFull:
                log.warning("closing a WebSocket that is not keeping up")
                self._queues.discard(queue)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(_CLOSE)

    def close_all(self) -> None:
        for queue in list(self._queues):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(_CLOSE)

    async def serve(self, websocket: WebSocket) -> None:
        """Run one `/ws` connection until the client leaves or the hub closes."""
        if not origin_allowed(websocket.headers.get("origin"), websocket.headers.get("host"), self.allowed_origins):
            await websocket.close(code=1008)  # before accept: the client gets HTTP 403
            return
        await websocket.accept()
        queue: asyncio.Queue = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._queues.add(queue)
        receiver = asyncio.create_task(_drain(websocket))
        try:
            while True:
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    return  # the client left
                item = getter.result()
                if item is _CLOSE:
                    with contextlib.suppress(Exception):
                        await websocket.close(code=1001)
                    return
                await websocket.send_text(item)
        except (WebSocketDisconnect, RuntimeError):
            return
        finally:
            self._queues.discard(queue)
            receiver.cancel()


async def _drain(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, until it disconnects."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return


__all__ = ["Hub", "origin_allowed"]
