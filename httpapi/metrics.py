"""Prometheus metrics for both services: each app its own registry, HTTP latency by route, `/metrics`.

    metrics = Metrics("gallery")                 # gallery_http_requests_total, ..._seconds
    app.add_middleware(HttpMetrics, metrics=metrics)
    metrics.registry.register(MyCollector())     # gauges read from the service at scrape time
    metrics.response()                           # the text format, for GET /metrics

Each app has a registry of its own (not prometheus_client's global one), so several apps in one
process (the tests, `serve`) never collide. A route is labelled by its template
(`/api/paintings/{painting_id}`), never by the path a client sent, so the label set stays small.
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Requests take milliseconds; an upload or a slow disk, seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """One service's registry and its HTTP metrics."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            f"{service}_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            f"{service}_http_request_seconds",
            "Seconds from a request's arrival to the start of its answer, by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def response(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class HttpMetrics:
    """Counts each HTTP request and times it to its first response byte, labelled by route template."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception that escapes every handler is answered 500 by the server

        async def send_and_count(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self.metrics.latency.labels(scope["method"], _route(scope)).observe(time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, send_and_count)
        finally:
            self.metrics.requests.labels(scope["method"], _route(scope), str(status)).inc()


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return "unmatched"
    return path or "/"  # a mount at the root (Gallery's page)


__all__ = ["LATENCY_BUCKETS", "HttpMetrics", "Metrics"]
