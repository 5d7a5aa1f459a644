"""Gallery's /metrics: paintings by status, the dispatcher's retries, HTTP latency by route."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from support import wait_for

OPERATOR = "operator-token-0123456789"


def samples(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {OPERATOR}"})
    assert response.status_code == 200, response.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_metrics_count_paintings_retries_and_requests(gallery_factory):
    gallery = gallery_factory("http://127.0.0.1:9", operator_token=OPERATOR)  # Studio away: it waits
    painting = gallery.post_painting({"size": 48, "iterations": 5}).json()
    gallery.wait_status(painting["id"], {"waiting_for_studio"}, 10)
    gallery.client.get(f"/api/paintings/{painting['id']}")
    wait_for(lambda: samples(gallery.client)[("gallery_dispatch_retries_total", (("reason", "studio"),))] >= 2, 10, "")
    got = samples(gallery.client)
    assert got[("gallery_paintings", (("status", "waiting_for_studio"),))] == 1
    assert got[("gallery_paintings", (("status", "done"),))] == 0
    one = (
        "gallery_http_requests_total",
        (("method", "GET"), ("route", "/api/paintings/{painting_id}"), ("status", "200")),
    )
    assert got[one] >= 1
    assert gallery.client.get("/metrics").status_code == 403  # an operator token is set: only with it
