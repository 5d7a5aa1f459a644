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
from collections.abc import Callable, Collection
from typing import Any
from urllib.parse import urlsplit

from starlette.websockets import WebSocket, WebSocketDisconnect

log = logging.getLogger("gallery.hub")

QUEUE_SIZE = 1000
Sees = Callable[[str | None], bool]  # whether a connection may see the events of a painting of this owner
Publish = Callable[[dict[str, Any], str | None], None]  # Hub.publish: an event, and its painting's owner
_CLOSE = object()


def origin_allowed(origin: str | None, host: str | None, allowed: Collection[str]) -> bool:
    """Whether a WebSocket from `origin` may connect: Gallery's own page (the origin `host` names), or
    one of `allowed`, as for the API's state-changing requests (gallery.guard)."""
    if not origin:
        return False  # every browser sends Origin; a page's script cannot remove it
    origin = origin.rstrip("/")
    if origin in {a.rstrip("/") for a in allowed}:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and bool(host) and parts.netloc.lower() == (host or "").lower()


class Hub:
    """Fan-out of painting events to the open WebSocket connections."""

    def __init__(self, allowed_origins: Collection[str] = ()) -> None:
        self.allowed_origins = tuple(allowed_origins)
        self._queues: dict[asyncio.Queue, Sees] = {}  # each connection's queue, and whose events it gets

    @property
    def connections(self) -> int:
        return len(self._queues)

    def publish(self, event: dict[str, Any], owner: str | None = None) -> None:
        """Send `event` about a painting of `owner` (its digest) to every connection that may see it."""
        text = json.dumps(event, separators=(",", ":"), allow_nan=False)
        for queue, sees in list(self._queues.items()):
            if not sees(owner):
                continue
            try:
                queue.put_nowait(text)
            except asyncio.QueueFull:
                log.warning("closing a WebSocket that is not keeping up")
                self._queues.pop(queue, None)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(_CLOSE)

    def close_all(self) -> None:
        for queue in list(self._queues):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(_CLOSE)

    async def serve(self, websocket: WebSocket, sees: Sees = lambda owner: True) -> None:
        """Run one `/ws` connection until the client leaves or the hub closes; it gets the events of
        the paintings whose owner `sees` accepts (all of them in a public gallery)."""
        if not origin_allowed(websocket.headers.get("origin"), websocket.headers.get("host"), self.allowed_origins):
            await websocket.close(code=1008)  # before accept: the client gets HTTP 403
            return
        await websocket.accept()
        queue: asyncio.Queue = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._queues[queue] = sees
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
            self._queues.pop(queue, None)
            receiver.cancel()


async def _drain(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, until it disconnects."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return


__all__ = ["Hub", "Publish", "Sees", "origin_allowed"]
