"""Painting events to every Gallery process's WebSockets: PostgreSQL LISTEN/NOTIFY between replicas.

    broadcast = Broadcast.start(hub, database_url, sender="host:1234")   # None URL: this process only
    broadcast.publish(event, owner)      # to this process's hub at once, and to the other replicas
    broadcast.stop()

Several Gallery processes share one PostgreSQL; a painting is driven by one of them (its lease), but
a page may be open on any. Each event goes to this process's hub at once and, as a NOTIFY on one
channel, to every other process, whose listener hands it to its own hub. A process skips its own
notifications (each carries its sender's name). NOTIFY is delivered after its transaction commits,
in order from each sender, to every session listening then; one that was not listening (its
connection broke) misses what was sent meanwhile, and its pages load the paintings again on
reconnect, as after any WebSocket break. A payload must fit PostgreSQL's 8000 bytes: an event
larger than that (a long history of weight changes) goes to the others without its history and
with `"partial": true`, and the page fetches the painting.

On SQLite (one process) the hub is all there is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from gallery.hub import Hub

log = logging.getLogger("gallery.broadcast")

CHANNEL = "deep_painting_gallery_events"
MAX_PAYLOAD = 7900  # PostgreSQL's limit is 8000 bytes
RECONNECT_S = 1.0


def libpq_url(database_url: str) -> str:
    """The SQLAlchemy URL (postgresql+psycopg://...) as psycopg's connection string."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class Broadcast:
    """Publishes painting events to this process's hub and, on PostgreSQL, to every other replica's."""

    def __init__(self, hub: Hub, conninfo: str | None = None, *, sender: str = "gallery") -> None:
        self.hub = hub
        self.conninfo = conninfo
        self.sender = sender
        self._send_lock = threading.Lock()
        self._sender: psycopg.Connection | None = None
        self._stopping = threading.Event()
        self._listener: threading.Thread | None = None
        self.listening = threading.Event()  # set while LISTEN is in force (tests wait for it)
        self.received = 0  # events other replicas sent that reached this hub

    @classmethod
    def start(cls, hub: Hub, database_url: str | None, *, sender: str) -> Broadcast:
        """The broadcast for this Gallery: LISTEN/NOTIFY on PostgreSQL, else this hub alone."""
        postgres = database_url is not None and make_url(database_url).get_backend_name() == "postgresql"
        broadcast = cls(hub, libpq_url(database_url) if postgres and database_url else None, sender=sender)
        if broadcast.conninfo is not None:
            loop = asyncio.get_running_loop()
            broadcast._listener = threading.Thread(
                target=broadcast._listen, args=(loop,), name="gallery-listen", daemon=True
            )
            broadcast._listener.start()
        return broadcast

    def publish(self, event: dict[str, Any], owner: str | None = None) -> None:
        self.hub.publish(event, owner)
        if self.conninfo is None:
            return
        payload = notification(self.sender, event, owner)
        with self._send_lock:
            try:
                if self._sender is None or self._sender.closed:
                    self._sender = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=2)
                self._sender.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
            except psycopg.Error as exc:  # the database is away: the other replicas' pages miss this one
                log.warning("could not tell the other Gallery processes about %s: %s", event.get("type"), exc)
                self._close_sender()

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.join(5)
        with self._send_lock:
            self._close_sender()

    def _close_sender(self) -> None:
        if self._sender is not None:
            with contextlib.suppress(Exception):
                self._sender.close()
            self._sender = None

    def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        """LISTEN on the channel and hand each other process's event to the hub, reconnecting after
        a break, until stopped."""
        assert self.conninfo is not None
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    log.info("listening for other Gallery processes' events")
                    while not self._stopping.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._deliver(loop, note.payload)
            except psycopg.Error as exc:
                self.listening.clear()
                if self._stopping.is_set():
                    return
                log.warning("not hearing other Gallery processes' events (%s); reconnecting", exc)
                time.sleep(RECONNECT_S)
        self.listening.clear()

    def _deliver(self, loop: asyncio.AbstractEventLoop, payload: str) -> None:
        try:
            message = json.loads(payload)
            if message.get("sender") == self.sender:
                return
            event, owner = message["event"], message.get("owner")
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("ignoring a notification that is not a painting event")
            return
        self.received += 1
        with contextlib.suppress(RuntimeError):  # the loop closed: Gallery is stopping
            loop.call_soon_threadsafe(self.hub.publish, event, owner)


def notification(sender: str, event: dict[str, Any], owner: str | None) -> str:
    """The NOTIFY payload of an event: its sender, its painting's owner and the event, slimmed to fit
    MAX_PAYLOAD (with `"partial": true`) when whole it would not."""
    text = json.dumps({"sender": sender, "owner": owner, "event": event}, separators=(",", ":"), allow_nan=False)
    if len(text.encode()) <= MAX_PAYLOAD:
        return text
    slim = {k: v for k, v in event.items() if k in ("type", "id", "status", "iteration", "iterations")}
    return json.dumps({"sender": sender, "owner": owner, "event": {**slim, "partial": True}}, separators=(",", ":"))


__all__ = ["CHANNEL", "MAX_PAYLOAD", "Broadcast", "libpq_url", "notification"]
