"""Gallery's guards for a service put on a network (issue 16: other websites cannot act for a visitor).

    add_guards(app, settings)                       the four ASGI middleware below, in their order
    uvicorn.Config(app, **server_options(settings)) the server-side header timeout

Outermost first, each answering a refusal as `{"detail": "<sentence>"}`:

- `SecurityHeaders`: every HTTP response carries a Content-Security-Policy (no inline script, images
  from Gallery and `blob:` (the pickers' thumbnails), connections to Gallery and its WebSocket,
  never framed), `X-Frame-Options: DENY`, `Referrer-Policy: same-origin` and
  `X-Content-Type-Options: nosniff`. The API documents (`/docs`, `/redoc`) load their scripts from a
  CDN and run an inline one, so they get a policy of their own that allows exactly that.
- `BodyDeadline`: a request's body must arrive within `body_timeout_s`, else 408 and the connection
  is closed; an answer given before the body arrived (a refusal) is sent once the rest is read and
  dropped, so the browser sees it, and closes the connection if that cannot be done in time.
- `AllowedHosts`: only the host names Gallery is configured for are served, on HTTP and WebSocket
  alike (DNS rebinding: a page whose name resolves to this machine names its own host): 400.
- `SameOrigin`: a state-changing request (any method but GET, HEAD, OPTIONS) must come from
  Gallery's own page: its `Origin` (without one, its `Referer`) is Gallery's own origin (the Host the
  request names, as the WebSocket check in gallery.hub does) or one of `allowed_origins`, and its
  `Sec-Fetch-Site` does not say cross-site: 403 otherwise, before the route runs.

  A request with neither Origin nor Referer nor Sec-Fetch-Site is served: that is a client outside a
  browser (curl, a script), which no website can drive. A browser cannot be made to leave them all
  out of a cross-origin POST: measured in Chromium 156, a `no-cors` fetch (with `referrerPolicy:
  "no-referrer"` too), `navigator.sendBeacon` and a form all send `Origin` (a form from a
  no-referrer page sends `Origin: null`, refused here), plus `Sec-Fetch-Site` to a secure context
  such as loopback; other methods need a CORS preflight, which Gallery never grants.

The header timeout lives in the server, not the app: uvicorn (0.54) arms no timer before a
request's headers are complete, so a connection that sends nothing, or a header a byte at a time, is
held for good. `server_options` gives uvicorn an HTTP protocol (its h11 one) that closes such a
connection after `header_timeout_s` (408 if part of a request came).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import h11
from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from gallery.settings import GallerySettings

log = logging.getLogger("gallery.guard")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")

# A DNS name (labels of letters, digits, '-' and '_', as Docker's service names have), an IPv4
# address, or an IPv6 address in brackets; any of them with a port.
_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*\.?")
_PORT = re.compile(r"[0-9]{1,5}")

# The page: its own scripts and styles only (no inline script, no eval), images from Gallery and
# the thumbnails the pickers make (blob:), connections to Gallery and its WebSocket (listed: not
# every browser counts ws: as 'self'), and nothing may frame it, change its base or post it elsewhere.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src {connect}; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's /docs (Swagger UI) and /redoc load their bundles and styles from jsDelivr, fonts from
# Google, a favicon from fastapi.tiangolo.com, start with an inline script (Swagger UI) and inject
# styles (ReDoc); they show the API document, not visitors' data, and still may not be framed.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
OTHER_HEADERS = (
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
    ("x-content-type-options", "nosniff"),
)


def add_guards(app: FastAPI, settings: GallerySettings) -> None:
    """Add the guards to `app`, outside every middleware added before (Starlette: last added, outermost)."""
    app.add_middleware(SameOrigin, allowed_origins=settings.allowed_origins)
    app.add_middleware(AllowedHosts, hosts=ServedHosts.from_settings(settings))
    app.add_middleware(BodyDeadline, timeout_s=settings.body_timeout_s)
    app.add_middleware(SecurityHeaders)


# --- host names -------------------------------------------------------------------------------


def split_host(value: str | None) -> tuple[str, int | None] | None:
    """(name, port) of a Host header value, the name lower-case and IPv6 without brackets; None if malformed."""
    if not value:
        return None
    value = value.strip().lower()
    port: str | None = None
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return None
        port = rest[1:] if rest else None
    else:
        name, colon, port_text = value.partition(":")
        port = port_text if colon else None
        if not _NAME.fullmatch(name):
            return None
        name = name.rstrip(".")
    if port is not None and not (_PORT.fullmatch(port) and int(port) <= 65535):
        return None
    return name, None if port is None else int(port)


def host_name(value: str | None) -> str | None:
    """The name a Host header value names, without its port; None if it is malformed."""
    parsed = split_host(value)
    return None if parsed is None else parsed[0]


def _arrived_on(scope: Scope) -> set[str]:
    """The address this connection arrived on (a Host naming it is this machine), as IPv4 too if mapped."""
    server = scope.get("server")
    if not server or not isinstance(server[0], str):
        return set()
    found = {server[0].lower()}
    try:
        address = ipaddress.ip_address(server[0])
    except ValueError:
        return found
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        found.add(str(address.ipv4_mapped))
    return found


@dataclass(frozen=True)
class ServedHosts:
    """The host names Gallery answers to: `names`, any name ending in one of `suffixes`, or every one."""

    names: frozenset[str]
    suffixes: tuple[str, ...] = ()
    every: bool = False

    @classmethod
    def from_settings(cls, settings: GallerySettings) -> ServedHosts:
        """Loopback names always (a rebinding page names its own host, never these), and
        `allowed_hosts`, or by default the host Gallery listens on (listening on every address: this
        machine's name). The address a request arrived on is always served too (see `allows`)."""
        if "*" in settings.allowed_hosts:
            return cls(frozenset(), every=True)
        patterns = list(settings.allowed_hosts)
        if not patterns:
            bind = settings.host.strip().strip("[]").lower()
            patterns = [socket.gethostname()] if bind in WILDCARD_BINDS else [bind]
        return cls.of(patterns)

    @classmethod
    def of(cls, patterns: Iterable[str]) -> ServedHosts:
        names, suffixes = set(LOOPBACK), []
        for pattern in patterns:
            text = pattern.strip().lower()
            if text.startswith("*."):
                name = host_name(text[2:])
                if name is None:
                    raise ValueError(f"GALLERY_ALLOWED_HOSTS: {pattern!r} is not a host name pattern")
                suffixes.append("." + name)
                continue
            name = host_name(f"[{text}]" if text.count(":") > 1 and not text.startswith("[") else text)  # IPv6
            if name is None:
                raise ValueError(f"GALLERY_ALLOWED_HOSTS: {pattern!r} is not a host name (nor '*', nor '*.domain')")
            names.add(name)
        return cls(frozenset(names), tuple(suffixes))

    def allows(self, name: str, scope: Scope) -> bool:
        if self.every or name in self.names or any(name.endswith(s) for s in self.suffixes):
            return True
        return name in _arrived_on(scope)

    def describe(self) -> str:
        if self.every:
            return "any host name"
        shown = sorted(self.names) + [f"*{s}" for s in self.suffixes]
        return ", ".join(shown) + " and the address a request arrives on"


class AllowedHosts:
    """400 `{"detail"}` for a request (HTTP or WebSocket) whose Host is not one Gallery serves."""

    def __init__(self, app: ASGIApp, *, hosts: ServedHosts) -> None:
        self.app = app
        self.hosts = hosts
        log.info("serving the host names %s", hosts.describe())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.hosts.every:
            await self.app(scope, receive, send)
            return
        host = Headers(scope=scope).get("host")
        name = host_name(host)
        if name is not None and self.hosts.allows(name, scope):
            await self.app(scope, receive, send)
            return
        if not host:
            detail = "the request names no host (no Host header)"
        elif name is None:
            detail = f"the Host header {host[:100]!r} is not a host name"
        else:
            detail = (
                f"this Gallery does not serve the host name {name[:100]!r}; "
                "if it is Gallery's, add it to GALLERY_ALLOWED_HOSTS"
            )
        log.info("refused a request for another host: %s", detail)
        await refuse(scope, receive, send, 400, detail)


async def refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
    """Answer `{"detail": detail}` with `status`; a WebSocket handshake too, where the server can."""
    response = JSONResponse({"detail": detail}, status_code=status)
    if scope["type"] == "websocket" and "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008, "reason": ""})  # the client sees 403
        return
    await response(scope, receive, send)


# --- who sent it ------------------------------------------------------------------------------


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of a URL or origin, lower-case, without a default port; None if it has none."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, name = parts.scheme.lower(), parts.hostname
    if not scheme or not name or parts.username is not None or parts.password is not None:
        return None
    shown = f"[{name}]" if ":" in name else name
    return f"{scheme}://{shown}" if port is None or port == DEFAULT_PORTS.get(scheme) else f"{scheme}://{shown}:{port}"


def is_own_origin(origin: str, host: str | None) -> bool:
    """Whether `origin` (as `origin_of` gives it) is the one the request's Host names (its page's own),
    with or without the scheme's default port; the scheme is not compared (a TLS proxy in front)."""
    parts = urlsplit(origin)
    named = split_host(host)
    if named is None or parts.hostname is None:
        return False
    default = DEFAULT_PORTS.get(parts.scheme)
    port = parts.port or default
    return parts.hostname == named[0] and (named[1] == port or (named[1] is None and port == default))


class SameOrigin:
    """403 `{"detail"}` for a state-changing request that does not come from Gallery's own page."""

    def __init__(self, app: ASGIApp, *, allowed_origins: Collection[str]) -> None:
        self.app = app
        self.allowed = frozenset(o for o in (origin_of(a) for a in allowed_origins) if o)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            reason = self.refusal(Headers(scope=scope))
            if reason is not None:
                log.info("refused %s %s: %s", scope["method"], scope["path"], reason)
                await refuse(scope, receive, send, 403, f"{reason}; changes must come from Gallery's own page")
                return
        await self.app(scope, receive, send)

    def refusal(self, headers: Headers) -> str | None:
        """Why the request does not come from Gallery's own page, or None."""
        site = headers.get("sec-fetch-site")
        sent_origin = headers.get("origin")
        sent_referer = headers.get("referer")
        claimed = sent_origin if sent_origin is not None else sent_referer
        if claimed is None:
            if site in (None, "same-origin", "none"):
                return None  # no browser, or one that says the request is Gallery's page's own
            return f"the browser says this request is {site} (Sec-Fetch-Site) and names no origin"
        named = "Origin" if sent_origin is not None else "Referer"
        if claimed.strip() == "null":
            return "this request comes from a page whose origin is hidden (Origin: null)"
        origin = origin_of(claimed)
        if origin is None:
            return f"the {named} header {claimed[:100]!r} names no origin"
        if origin in self.allowed:
            return None
        if not is_own_origin(origin, headers.get("host")):
            return f"this request comes from {origin[:100]} ({named}), not from this Gallery"
        if site == "cross-site":
            return "the browser says this request is cross-site (Sec-Fetch-Site)"
        return None


# --- slow clients -----------------------------------------------------------------------------


class BodyTimeout(Exception):
    """The request's body did not arrive in time."""


class BodyDeadline:
    """408 when a request's body is not in within `timeout_s` of its headers; the connection is closed.

    Only the wait for the body is bounded: once it is in, the app may wait for the client to leave.
    An answer given before the body arrived (a refusal) waits until the rest of it is read and
    dropped, as a server's lingering close would, so that the client is not cut off while it sends
    and sees the answer; a body over `DRAIN_BYTES`, or not in by the deadline, is not waited for: the
    answer then says `Connection: close`.
    """

    DRAIN_BYTES = 1024 * 1024

    def __init__(self, app: ASGIApp, *, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if headers.get("content-length", "0").strip() in ("", "0") and "transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body to wait for
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        complete = timed_out = started = False
        detail = f"the request body did not arrive within {self.timeout_s:g} s"

        async def timed_receive() -> Message:
            nonlocal complete, timed_out
            if complete:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                timed_out = True
                raise BodyTimeout(detail) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        async def drain() -> None:
            """Read and drop the rest of the body, within the deadline and DRAIN_BYTES."""
            dropped = 0
            while not complete and dropped <= self.DRAIN_BYTES:
                try:
                    message = await timed_receive()
                except BodyTimeout:
                    return
                dropped += len(message.get("body", b""))

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                if timed_out:  # the app turned the timeout into an answer of its own: ours is the truth
                    raise BodyTimeout(detail)
                if not complete:
                    await drain()
                if not complete:
                    response_headers = MutableHeaders(scope=message)
                    if "close" not in response_headers.get("connection", "").lower():
                        response_headers["connection"] = "close"
                started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except BodyTimeout:
            if started:
                raise
            log.info("408 for %s %s: %s", scope["method"], scope["path"], detail)
            await JSONResponse({"detail": detail}, status_code=408, headers={"Connection": "close"})(
                scope, receive, send
            )


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with a bound on the time to receive a request's headers.

    The timer starts when a connection opens and when the first byte of a later request on it
    arrives, and stops when the request's headers are complete. When it fires, a connection that
    has sent part of a request gets a 408 `{"detail"}`; one that has sent nothing is just closed.
    """

    header_timeout_s = 10.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._head_begun = False
        self._header_timer: asyncio.TimerHandle | None = self.loop.call_later(
            self.header_timeout_s, self._on_header_timeout
        )

    def data_received(self, data: bytes) -> None:
        waiting = self.conn.their_state is h11.IDLE
        if waiting:
            self._head_begun = self._head_begun or bool(data)
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(self.header_timeout_s, self._on_header_timeout)
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._stop_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may start the next (pipelined) request
        if self.conn.their_state is h11.IDLE:
            self._head_begun = False

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._head_begun = False

    def _on_header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self._head_begun:
            body = f'{{"detail":"the request headers did not arrive within {self.header_timeout_s:g} s"}}'.encode()
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
        self.transport.close()


def server_options(settings: GallerySettings) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.Config` that bound the time a client has to send its headers."""
    protocol = type("GalleryHTTPProtocol", (HeaderTimeoutH11Protocol,), {"header_timeout_s": settings.header_timeout_s})
    return {"http": protocol}


# --- what every response says -----------------------------------------------------------------


def page_policy(host: str | None) -> str:
    """The page's policy; its WebSocket is on the host the request names (checked by AllowedHosts,
    and written into the policy only when it is a plain host[:port])."""
    connect = "'self'"
    if split_host(host) is not None and host is not None:
        connect += f" ws://{host.strip()} wss://{host.strip()}"
    return PAGE_POLICY.format(connect=connect)


class SecurityHeaders:
    """The Content-Security-Policy and the other security headers on every HTTP response."""

    def __init__(self, app: ASGIApp, *, docs_paths: Collection[str] = DOCS_PATHS) -> None:
        self.app = app
        self.docs_paths = frozenset(docs_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"] in self.docs_paths
        policy = DOCS_POLICY if docs else page_policy(Headers(scope=scope).get("host"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in (("content-security-policy", policy), *OTHER_HEADERS):
                    if name not in headers:
                        headers.append(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


__all__ = [
    "AllowedHosts",
    "BodyDeadline",
    "HeaderTimeoutH11Protocol",
    "SameOrigin",
    "SecurityHeaders",
    "ServedHosts",
    "add_guards",
    "host_name",
    "origin_of",
    "server_options",
    "split_host",
]
