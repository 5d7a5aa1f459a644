"""Paintings have owners without accounts (the browser that made one, by a cookie), a private
gallery shows each browser only its own, and caps answer 429 with Retry-After. Gallery runs for real
on loopback; Studio is away (nothing listens), so paintings stay unfinished."""

from __future__ import annotations

import json

import httpx
import pytest
from websockets.sync.client import connect
from websockets.typing import Origin

from gallery.owners import OWNER_COOKIE

from support import png

STUDIO_AWAY = "http://127.0.0.1:9"
OPERATOR = "operator-token-0123456789"


def another_browser(gallery, **headers: str) -> httpx.Client:
    return httpx.Client(base_url=gallery.url, timeout=30, headers=headers)


def test_only_the_browser_that_made_a_painting_may_change_it(gallery_factory):
    gallery = gallery_factory(STUDIO_AWAY, operator_token=OPERATOR)
    response = gallery.post_painting({"size": 48, "iterations": 5})
    assert response.status_code == 201 and response.json()["mine"] is True
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith(f"{OWNER_COOKIE}=") and "httponly" in cookie and "samesite=strict" in cookie
    painting = response.json()
    url = f"/api/paintings/{painting['id']}"

    with another_browser(gallery) as stranger:
        seen = stranger.get(url).json()
        assert seen["id"] == painting["id"] and seen["mine"] is False  # a public gallery: anyone may look
        for method, path, body in (("POST", "/cancel", None), ("POST", "/remix", {"params": {}}), ("DELETE", "", None)):
            refused = stranger.request(method, url + path, json=body)
            assert refused.status_code == 403, refused.text
            assert "Only the browser that made this painting" in refused.json()["detail"]
        assert OWNER_COOKIE not in stranger.cookies  # refusing gives no secret either
    assert gallery.painting(painting["id"])["status"] in ("queued", "waiting_for_studio")
    assert gallery.client.get("/api/paintings").json()["total"] == 1

    with another_browser(gallery, Authorization=f"Bearer {OPERATOR}") as operator:
        assert operator.post(url + "/cancel").json()["status"] == "cancelled"
    assert gallery.client.post(url + "/remix", json={"params": {"size": 48}}).status_code == 201  # the owner
    assert gallery.client.delete(url).status_code == 204


def test_a_private_gallery_shows_each_browser_only_its_own(gallery_factory):
    gallery = gallery_factory(STUDIO_AWAY, private=True)
    ws_url = gallery.url.replace("http", "ws") + "/ws"
    mine = gallery.post_painting({"size": 48, "iterations": 5}, content=png(50, 40, (1, 2, 3))).json()
    secret = gallery.client.cookies[OWNER_COOKIE]
    with another_browser(gallery) as stranger:
        assert stranger.get("/api/paintings").json() == {"items": [], "total": 0, "limit": 20, "offset": 0}
        assert stranger.get(f"/api/paintings/{mine['id']}").status_code == 404
        assert stranger.get(f"/api/images/{mine['content_image']}").status_code == 404
        assert stranger.post(f"/api/paintings/{mine['id']}/cancel").status_code == 404
        theirs = stranger.post(
            "/api/paintings",
            files=[("content", ("c.png", png(60, 40), "image/png")), ("style", ("s.png", png(8, 8), "image/png"))],
            data={"params": json.dumps({"size": 48, "iterations": 5})},
        ).json()
        with (
            connect(
                ws_url, origin=Origin(gallery.origin), additional_headers={"Cookie": f"{OWNER_COOKIE}={secret}"}
            ) as own_socket,
            connect(ws_url, origin=Origin(gallery.origin)) as anonymous_socket,
        ):
            assert stranger.post(f"/api/paintings/{theirs['id']}/cancel").json()["status"] == "cancelled"
            assert gallery.client.post(f"/api/paintings/{mine['id']}/cancel").json()["status"] == "cancelled"
            event = json.loads(own_socket.recv(timeout=5))
            assert (event["type"], event["id"]) == ("painting.cancelled", mine["id"])  # its own, not theirs
            with pytest.raises(TimeoutError):
                anonymous_socket.recv(timeout=0.5)  # a browser with no paintings hears of none
    listing = gallery.client.get("/api/paintings").json()
    assert [p["id"] for p in listing["items"]] == [mine["id"]] and listing["total"] == 1
    image = gallery.client.get(f"/api/images/{mine['content_image']}")
    assert image.status_code == 200 and image.headers["cache-control"].startswith("private")


def test_caps_answer_429_with_retry_after_and_say_why(gallery_factory):
    gallery = gallery_factory(STUDIO_AWAY, max_unfinished_per_client=2, max_unfinished=3, max_creations_per_minute=1000)
    for _ in range(2):
        assert gallery.post_painting({"size": 48, "iterations": 5}).status_code == 201
    refused = gallery.post_painting({"size": 48, "iterations": 5})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert refused.json()["detail"].startswith("You have 2 paintings waiting or under way")
    with another_browser(gallery) as second, another_browser(gallery) as third:
        files = [("content", ("c.png", png(60, 40), "image/png")), ("style", ("s.png", png(8, 8), "image/png"))]
        data = {"params": json.dumps({"size": 48, "iterations": 5})}
        assert second.post("/api/paintings", files=files, data=data).status_code == 201
        full = third.post("/api/paintings", files=files, data=data)
        assert full.status_code == 429 and "as many as it takes" in full.json()["detail"]
    assert gallery.client.get("/api/paintings").json()["total"] == 3  # nothing stored for a refusal


def test_an_address_creating_too_fast_is_slowed_down(gallery_factory):
    gallery = gallery_factory(STUDIO_AWAY, max_creations_per_minute=4)
    statuses = []
    for _ in range(6):
        with another_browser(gallery) as fresh:  # a script that drops its cookie every time
            files = [("content", ("c.png", png(60, 40), "image/png")), ("style", ("s.png", png(8, 8), "image/png"))]
            response = fresh.post("/api/paintings", files=files, data={"params": '{"size": 48}'})
            statuses.append(response.status_code)
    assert statuses == [201, 201, 201, 201, 429, 429]
    assert 0 < int(response.headers["retry-after"]) <= 60 and "in the last minute" in response.json()["detail"]


def test_the_deployments_limits_are_in_the_schema_and_enforced(gallery_factory):
    gallery = gallery_factory(STUDIO_AWAY, max_size=256, max_iterations=50)
    properties = gallery.client.get("/api/params/schema").json()["properties"]
    assert (properties["size"]["maximum"], properties["iterations"]["maximum"]) == (256, 50)
    assert properties["iterations"]["default"] == 50  # the default (100) would be refused here
    too_big = gallery.post_painting({"size": 512, "iterations": 5})
    assert too_big.status_code == 422 and "size: this Gallery paints at most 256 px high" in too_big.json()["detail"]
    too_long = gallery.post_painting({"size": 64, "iterations": 5000})
    assert too_long.status_code == 422 and "iterations: this Gallery runs at most 50" in too_long.json()["detail"]
    assert gallery.client.get("/api/paintings").json()["total"] == 0
