"""Gallery's Prometheus metrics: paintings by status, unfinished trainings by status, cancels and
deletes Studio has not confirmed, open WebSockets, the dispatcher's retries by reason and its moves
off gone Studios, and each Studio of the pool as Gallery last read it (up, workers, running,
queued); HTTP latency by route comes from `httpapi.metrics`."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gallery.hub import Hub
from gallery.pool import StudioPool
from httpapi.metrics import Metrics
from painting.catalog import Catalog
from painting.records import UNFINISHED, Status


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
        self.moves = Counter(
            "gallery_studio_moves",
            "Paintings taken off a Studio gone for longer than the grace period, to be painted on another.",
            registry=self.registry,
        )

    def retried(self, reason: str) -> None:
        self.retries.labels(reason).inc()

    def moved(self) -> None:
        self.moves.inc()

    def watch(self, catalog: Catalog, hub: Hub, pool: StudioPool) -> None:
        """Read the paintings, the hub and the pool at each scrape."""
        self.registry.register(_GalleryState(catalog, hub, pool))


class _GalleryState(Collector):
    def __init__(self, catalog: Catalog, hub: Hub, pool: StudioPool) -> None:
        self.catalog = catalog
        self.hub = hub
        self.pool = pool

    def collect(self) -> Iterator[Metric]:
        paintings = GaugeMetricFamily("gallery_paintings", "Paintings in the catalog, by status.", labels=["status"])
        for status in Status:
            paintings.add_metric([status.value], self.catalog.count(statuses={status}))
        yield paintings
        unfinished = self.catalog.unfinished_trainings()
        trainings = GaugeMetricFamily(
            "gallery_trainings_unfinished",
            "Trainings queued, waiting for Studio or running, by status.",
            labels=["status"],
        )
        for status in sorted(UNFINISHED):
            trainings.add_metric([status.value], float(sum(1 for r in unfinished if r.status == status)))
        yield trainings
        pending = len(self.catalog.remote_actions()) + len(self.catalog.remote_actions(target="training"))
        yield GaugeMetricFamily(
            "gallery_studio_actions_pending", "Cancels and deletes Studio has not confirmed.", value=pending
        )
        yield GaugeMetricFamily("gallery_websockets", "Open /ws connections.", value=self.hub.connections)
        families = {
            "up": GaugeMetricFamily(
                "gallery_studio_up", "1 while the Studio answers, 0 while it does not.", labels=["studio"]
            ),
            "workers": GaugeMetricFamily(
                "gallery_studio_workers_ready", "The Studio's workers ready to paint.", labels=["studio"]
            ),
            "running": GaugeMetricFamily(
                "gallery_studio_running_jobs", "Jobs the Studio's workers paint now.", labels=["studio"]
            ),
            "queued": GaugeMetricFamily(
                "gallery_studio_queue_depth", "Jobs waiting for a worker at the Studio.", labels=["studio"]
            ),
            "down": GaugeMetricFamily(
                "gallery_studio_down_seconds",
                "Seconds since the Studio stopped answering (0: it answers).",
                labels=["studio"],
            ),
        }
        for member in self.pool.members:
            said = member.status or {}
            families["up"].add_metric([member.name], 1.0 if member.up else 0.0)
            families["down"].add_metric([member.name], member.down_for())
            if member.status is not None:
                families["workers"].add_metric([member.name], float(said.get("workers_ready") or 0))
                families["running"].add_metric([member.name], float(said.get("running") or 0))
                families["queued"].add_metric([member.name], float(said.get("queued") or 0))
        yield from families.values()


__all__ = ["GalleryMetrics"]
