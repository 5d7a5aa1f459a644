"""Other websites cannot act for a visitor (issue 16), against a real Gallery on loopback (uvicorn).

- A state-changing request (POST, PUT, PATCH, DELETE) must come from Gallery's own page: its
  `Origin` (or, without one, its `Referer`) names Gallery's own origin or an allowed one, and
  `Sec-Fetch-Site` does not say cross-site; anything else is 403 `{"detail": ...}`, nothing changed.
  A request with none of these headers (curl, scripts, these tests' clients) is served: a browser
  always sends `Origin` on a cross-origin POST (tests/gallery/test_gallery_cross_site.py checks it).
- Only the host names Gallery is configured for are served (DNS rebinding), on /api and /ws alike.
- Every response carries a Content-Security-Policy and the other security headers.
- A request whose headers or body arrive too slowly is answered 408 and its connection closed.

Studio is a closed port here: paintings wait, which is all these checks need.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from gallery.app import create_app
from gallery.settings import GallerySettings

from support import free_port, png, wait_for

NO_STUDIO = "http://127.0.0.1:9"  # nothing listens there: the dispatcher just waits
EVIL = "http://evil.example"


@pytest.fixture
def gallery(gallery_factory):
    return gallery_factory(NO_STUDIO)


def create(gallery, **headers: str) -> httpx.Response:
    files = [("content", ("c.png", png(64, 48), "image/png")), ("style", ("s.png", png(48, 48), "image/png"))]
    return gallery.client.post("/api/paintings", files=files, data={"params": "{}"}, headers=headers)


def made(gallery) -> str:
    response = create(gallery)
    assert response.status_code == 201, response.text
    painting_id = response.json()["id"]
    gallery.wait_status(painting_id, {"waiting_for_studio"}, timeout=30)  # settled: nothing changes by itself
    return painting_id


def act(gallery, action: str, painting_id: str, **headers: str) -> httpx.Response:
    """One of the four state-changing calls the page makes."""
    client = gallery.client
    if action == "create":
        return create(gallery, **headers)
    if action == "cancel":
        return client.post(f"/api/paintings/{painting_id}/cancel", headers=headers)
    if action == "remix":
        body = json.dumps({"params": {"iterations": 3}})
        return client.post(f"/api/paintings/{painting_id}/remix", content=body, headers=headers)
    assert action == "delete"
    return client.delete(f"/api/paintings/{painting_id}", headers=headers)


def snapshot(gallery) -> list[tuple[str, str]]:
    items = gallery.client.get("/api/paintings?limit=500").json()["items"]
    return sorted((p["id"], p["status"]) for p in items)


ACTIONS = ["create", "cancel", "remix", "delete"]
FOREIGN = {
    "another site": {"Origin": EVIL},
    "another port of the same host": {"Origin": "http://127.0.0.1:1"},
    "an opaque origin (a sandboxed page, a no-referrer form)": {"Origin": "null"},
    "another site's page, by Referer": {"Referer": f"{EVIL}/attack.html"},
    "a cross-site request without Origin or Referer": {"Sec-Fetch-Site": "cross-site"},
    "a same-site request that cannot say whose": {"Sec-Fetch-Site": "same-site"},
    "Gallery's origin but a cross-site fetch": {"Origin": "<own>", "Sec-Fetch-Site": "cross-site"},
}


# --- 1. state-changing requests must come from Gallery's own page -----------------------------


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("where", list(FOREIGN))
def test_a_state_changing_request_from_elsewhere_is_403_and_changes_nothing(gallery, action, where):
    painting_id = made(gallery)
    before = snapshot(gallery)
    headers = {k: gallery.origin if v == "<own>" else v for k, v in FOREIGN[where].items()}
    response = act(gallery, action, painting_id, **headers)
    assert response.status_code == 403, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "Gallery's own page" in detail, detail
    assert snapshot(gallery) == before


@pytest.mark.parametrize("action", ACTIONS)
def test_the_same_calls_from_gallerys_own_page_or_without_browser_headers_are_served(gallery, action):
    own = {
        "Origin": gallery.origin,
        "Referer": f"{gallery.origin}/#painting/x",
        "Sec-Fetch-Site": "same-origin",
    }
    variants: list[dict[str, str]] = [
        own,
        {"Referer": f"{gallery.origin}/"},  # an old browser that sends only a Referer
        {},  # curl, a script, the test suite's clients
        {"Origin": gallery.origin.replace("127.0.0.1", "localhost"), "Host": f"localhost:{gallery.port}"},
        {"Origin": f"{gallery.origin}/"},  # a trailing slash is the same origin
    ]
    for headers in variants:
        painting_id = made(gallery)
        response = act(gallery, action, painting_id, **headers)
        assert response.status_code in (200, 201, 204), (headers, response.text)


def test_an_allowed_origin_may_act_even_cross_site(gallery_factory):
    gallery = gallery_factory(NO_STUDIO, allowed_origins=["https://paint.example"])
    response = create(gallery, Origin="https://paint.example", **{"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 201, response.text
    assert create(gallery, Origin="https://other.example").status_code == 403
    assert create(gallery, Origin=gallery.origin).status_code == 201  # its own page still works


def test_reading_is_not_refused_for_its_origin(gallery):
    response = gallery.client.get("/api/paintings", headers={"Origin": EVIL, "Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 200


def test_a_refused_body_is_dropped_so_the_browser_sees_the_403_and_a_slow_one_is_not_waited_for(gallery_factory):
    """A refusal comes before the body is read; the body is then read and dropped (closing at once
    would reset the connection under a browser still sending, and it would never see the 403)."""
    gallery = gallery_factory(NO_STUDIO, body_timeout_s=1.0)
    body = b"--x\r\n" + b"a" * 200_000
    head = (
        b"POST /api/paintings HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\r\n"
        b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: %d\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", gallery.port), timeout=10) as sock:
        sock.sendall(head % len(body) + body)
        answer = b""
        while b'"}' not in answer:
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 403 "), answer[:200]
        assert b"connection: close" not in answer.lower()
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # the connection still works
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    with socket.create_connection(("127.0.0.1", gallery.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(head % 10_000_000 + b"--x\r\n")  # and the rest never comes
        answer = read_all(sock, 10)
    assert answer.startswith(b"HTTP/1.1 403 "), answer[:200]
    assert b"connection: close" in answer.lower() and time.monotonic() - started < 5
    assert gallery.stored() == (0, 0)


# --- 2. only configured host names are served ------------------------------------------------


def read_all(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (or `timeout` passes)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return data


def ws_handshake(port: int, host: str, origin: str) -> bytes:
    """The server's answer to a WebSocket handshake on /ws naming `host`, up to the end of its headers."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode())
        sock.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        if data.startswith(b"HTTP/1.1 4"):
            data += read_all(sock, 2)
    return data


def test_a_foreign_host_name_is_refused_on_the_api_and_nothing_stored(gallery):
    response = gallery.client.get("/api/paintings", headers={"Host": "evil.example"})
    assert response.status_code == 400, response.text
    assert "evil.example" in response.json()["detail"]
    # DNS rebinding: the attacker's page has the attacker's name as its origin and as the Host.
    response = create(gallery, Host=f"evil.example:{gallery.port}", Origin=f"{EVIL}:{gallery.port}")
    assert response.status_code == 400, response.text
    assert gallery.stored() == (0, 0)


def test_a_foreign_host_name_cannot_open_the_websocket(gallery):
    answer = ws_handshake(gallery.port, f"evil.example:{gallery.port}", f"{EVIL}:{gallery.port}")
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:300]
    assert b'"detail"' in answer
    answer = ws_handshake(gallery.port, f"127.0.0.1:{gallery.port}", gallery.origin)
    assert answer.startswith(b"HTTP/1.1 101 "), answer[:300]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST", "[::1]"])
def test_the_loopback_names_are_served_with_or_without_the_port(gallery, host):
    for named in (host, f"{host}:{gallery.port}"):
        response = gallery.client.get("/api/paintings", headers={"Host": named})
        assert response.status_code == 200, (named, response.text)


def test_configured_host_names_are_served_and_star_serves_any(gallery_factory):
    gallery = gallery_factory(NO_STUDIO, allowed_hosts=["paint.example", "*.lan.example"])
    for host in ("paint.example", "paint.example:8443", "pc.lan.example", "127.0.0.1"):
        assert gallery.client.get("/api/paintings", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example", "lan.example.evil.example", "paint.example.evil.example"):
        assert gallery.client.get("/api/paintings", headers={"Host": host}).status_code == 400, host
    anything = gallery_factory(NO_STUDIO, name="any", allowed_hosts=["*"])
    assert anything.client.get("/api/paintings", headers={"Host": "evil.example"}).status_code == 200
    answer = ws_handshake(anything.port, "evil.example", EVIL)
    assert answer.startswith(b"HTTP/1.1 101 "), answer[:300]


def test_by_default_the_host_it_listens_on_is_served(gallery_factory):
    named = gallery_factory(NO_STUDIO, host="gallery.internal")
    assert named.client.get("/api/paintings", headers={"Host": "gallery.internal:8000"}).status_code == 200
    assert named.client.get("/api/paintings", headers={"Host": "other.internal"}).status_code == 400
    # Listening on every address: this machine's name, and the address a request arrived on.
    everywhere = gallery_factory(NO_STUDIO, name="everywhere", host="0.0.0.0")
    for host in (socket.gethostname(), f"127.0.0.1:{everywhere.port}"):
        assert everywhere.client.get("/api/paintings", headers={"Host": host}).status_code == 200, host
    assert everywhere.client.get("/api/paintings", headers={"Host": "203.0.113.9"}).status_code == 400


@pytest.mark.parametrize(
    "request_head",
    [
        b"GET /api/paintings HTTP/1.0\r\n\r\n",  # HTTP/1.0 may leave Host out
        b"GET /api/paintings HTTP/1.1\r\nHost: 127.0.0.1:port\r\n\r\n",
        b"GET /api/paintings HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET /api/paintings HTTP/1.1\r\nHost: [::1\r\n\r\n",
    ],
)
def test_a_missing_or_malformed_host_is_400(gallery, request_head):
    with socket.create_connection(("127.0.0.1", gallery.port), timeout=10) as sock:
        sock.sendall(request_head)
        answer = read_all(sock, 10)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:300]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["detail"]


# --- 3. security headers on every response ---------------------------------------------------


def csp(response: httpx.Response) -> dict[str, str]:
    policy = response.headers.get("content-security-policy")
    assert policy, f"{response.request.url}: no Content-Security-Policy"
    return {d.split()[0]: " ".join(d.split()[1:]) for d in (p.strip() for p in policy.split(";")) if d}


def test_every_response_carries_the_security_headers(gallery_factory, tmp_path):
    page = tmp_path / "page"
    page.mkdir()
    (page / "index.html").write_text("<!doctype html><title>Deep Painting</title>")
    gallery = gallery_factory(NO_STUDIO, frontend_dir=page)
    painting_id = made(gallery)
    image = gallery.painting(painting_id)["content_image"]
    responses = [
        gallery.client.get("/"),
        gallery.client.get("/api/paintings"),
        gallery.client.get(f"/api/images/{image}"),
        gallery.client.get("/api/paintings/nope"),  # 404
        gallery.client.get("/openapi.json"),
        gallery.client.get("/health/ready"),
        create(gallery, Origin=EVIL),  # 403
        gallery.client.get("/api/paintings", headers={"Host": "evil.example"}),  # 400
    ]
    for response in responses:
        where = f"{response.request.method} {response.request.url.path} -> {response.status_code}"
        assert response.headers.get("x-frame-options") == "DENY", where
        assert response.headers.get("referrer-policy") == "same-origin", where
        assert response.headers.get_list("x-content-type-options") == ["nosniff"], where
        policy = csp(response)
        assert policy["default-src"] == "'self'", where
        assert policy["script-src"] == "'self'", where  # no inline script, no eval
        assert policy["img-src"] == "'self' blob:", where
        assert policy["frame-ancestors"] == "'none'", where
        assert policy["base-uri"] == "'none'", where
        assert policy["form-action"] == "'self'", where
        assert policy["object-src"] == "'none'", where
    page_policy = csp(responses[0])
    assert page_policy["connect-src"] == f"'self' ws://127.0.0.1:{gallery.port} wss://127.0.0.1:{gallery.port}"
    assert "unsafe" not in responses[0].headers["content-security-policy"]


def test_the_docs_page_gets_a_policy_that_lets_swagger_ui_load(gallery):
    response = gallery.client.get("/docs")
    assert response.status_code == 200
    policy = csp(response)
    assert "https://cdn.jsdelivr.net" in policy["script-src"] and "https://cdn.jsdelivr.net" in policy["style-src"]
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert response.headers["x-frame-options"] == "DENY"
    assert "cdn.jsdelivr.net" not in gallery.client.get("/").headers["content-security-policy"]


def test_a_hostile_host_header_cannot_write_into_the_policy(gallery_factory):
    gallery = gallery_factory(NO_STUDIO, allowed_hosts=["*"])
    response = gallery.client.get("/api/paintings", headers={"Host": "x;script-src *"})
    assert "script-src *" not in response.headers["content-security-policy"]
    assert csp(response)["connect-src"] == "'self'"


# --- 4. slow requests are cut off ------------------------------------------------------------

CONNECTIONS = 50


def open_slow(port: int, head: bytes, count: int = CONNECTIONS) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(head)
        socks.append(sock)
    return socks


def trickle_until_closed(socks: list[socket.socket], within: float, every: float = 0.25) -> tuple[list[bytes], float]:
    """Send one more byte on each open connection every `every` s until the server has closed all of
    them or `within` s pass; what each received, and how long it took."""
    answers = [b""] * len(socks)
    open_ = set(range(len(socks)))
    started = time.monotonic()
    for sock in socks:
        sock.setblocking(False)
    while open_ and time.monotonic() - started < within:
        for i in list(open_):
            try:
                chunk = socks[i].recv(65536)
            except BlockingIOError:
                chunk = None
            except OSError:
                chunk = b""
            if chunk == b"":
                open_.discard(i)
                continue
            if chunk:
                answers[i] += chunk
            try:
                socks[i].send(b"a")
            except BlockingIOError:
                pass
            except OSError:
                open_.discard(i)
        time.sleep(every)
    elapsed = time.monotonic() - started
    for sock in socks:
        sock.close()
    assert not open_, f"{len(open_)} of {len(socks)} slow connections still open after {within} s"
    return answers, elapsed


def test_a_body_that_arrives_too_slowly_is_408_and_its_connection_closed(gallery_factory):
    gallery = gallery_factory(NO_STUDIO, body_timeout_s=1.0)
    head = (
        b"POST /api/paintings HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 1000000\r\n\r\n--x\r\n"
    )
    socks = open_slow(gallery.port, head)
    answers, elapsed = trickle_until_closed(socks, within=8)
    assert elapsed < 8
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b"did not arrive within 1" in answer
    assert create(gallery).status_code == 201  # and Gallery still serves


@pytest.fixture
def guarded_server(tmp_path) -> Iterator[tuple[int, GallerySettings]]:
    """Gallery served the way `deep-painting gallery` and `serve` serve it (gallery.guard.server_options)."""
    from gallery.guard import server_options

    settings = GallerySettings(
        data_dir=tmp_path / "data", studio_url=NO_STUDIO, frontend_dir=tmp_path / "none", header_timeout_s=1.0
    )
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", **server_options(settings)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, "started")
    yield port, settings
    server.should_exit = True
    thread.join(30)
    assert not thread.is_alive()


def test_headers_that_arrive_too_slowly_are_408_and_their_connections_closed(guarded_server):
    port, _ = guarded_server
    socks = open_slow(port, b"POST /api/paintings HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    answers, elapsed = trickle_until_closed(socks, within=8)
    assert elapsed < 8
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b'"detail"' in answer and b"headers did not arrive within 1" in answer
    assert httpx.get(f"http://127.0.0.1:{port}/api/paintings").status_code == 200  # and it still serves


def test_a_connection_that_sends_nothing_is_closed(guarded_server):
    port, _ = guarded_server
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(CONNECTIONS)]
    started = time.monotonic()
    for sock in socks:
        assert read_all(sock, max(0.1, 8 - (time.monotonic() - started))) == b""  # closed without a word
    assert time.monotonic() - started < 8
    for sock in socks:
        sock.close()


def test_a_kept_alive_connection_still_works_and_slow_headers_on_it_are_cut_off(guarded_server):
    port, _ = guarded_server
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        for _ in range(3):  # one connection, several requests, each well within the bound
            assert client.get("/api/paintings").status_code == 200
            time.sleep(0.4)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = b""
        while not first.endswith(b'{"status":"live"}'):
            chunk = sock.recv(65536)
            assert chunk, first
            first += chunk
        assert first.startswith(b"HTTP/1.1 200 "), first
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # the second one never ends
        answer = read_all(sock, 6)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
