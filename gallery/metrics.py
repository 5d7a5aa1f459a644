"""Gallery's Prometheus metrics: paintings by status, cancels and deletes Studio has not confirmed,
open WebSockets, and the dispatcher's retries by reason; HTTP latency by route comes from
`httpapi.metrics`."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gallery.hub import Hub
from httpapi.metrics import Metrics
from painting.catalog import Catalog
from painting.records import Status


class GalleryMetrics(Metrics):
    def __init__(self) -> None:
        super().__init__("gallery")
        self.retries = Counter(
            "gallery_dispatch_retries",
            "Times a painting's dispatch waited and tried again, by reason: studio (away, slow, 5xx, token), "
            "storage (Gallery's own disk or database), stream (Studio's event stream ended early).",
            ["reason"],
            registry=self.registry,
        )

    def retried(self, reason: str) -> None:
        self.retries.labels(reason).inc()

    def watch(self, catalog: Catalog, hub: Hub) -> None:
        """Read the paintings and the hub at each scrape."""
        self.registry.register(_GalleryState(catalog, hub))


class _GalleryState(Collector):
    def __init__(self, catalog: Catalog, hub: Hub) -> None:
        self.catalog = catalog
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        paintings = GaugeMetricFamily("gallery_paintings", "Paintings in the catalog, by status.", labels=["status"])
        for status in Status:
            paintings.add_metric([status.value], self.catalog.count(statuses={status}))
        yield paintings
        pending = len(self.catalog.remote_actions())
        yield GaugeMetricFamily(
            "gallery_studio_actions_pending", "Cancels and deletes Studio has not confirmed.", value=pending
        )
        yield GaugeMetricFamily("gallery_websockets", "Open /ws connections.", value=self.hub.connections)


__all__ = ["GalleryMetrics"]
