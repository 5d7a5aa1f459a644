"""Studio's Prometheus metrics: jobs by status, trainings under way, queue and workers, restarts,
storage faults, and seconds per iteration; HTTP latency by route comes from `httpapi.metrics`."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from httpapi.metrics import Metrics
from painting.catalog import Catalog
from painting.records import Status
from studio.supervisor import Supervisor

# A 48 px test painting: milliseconds; 400 px on a CPU: about a second; 2048 px: minutes.
ITERATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 120.0, 600.0)


class StudioMetrics(Metrics):
    def __init__(self) -> None:
        super().__init__("studio")
        self.iteration_seconds = Histogram(
            "studio_iteration_seconds",
            "Seconds one L-BFGS iteration took, as the workers report them.",
            buckets=ITERATION_BUCKETS,
            registry=self.registry,
        )

    def watch(self, catalog: Catalog, supervisor: Supervisor) -> None:
        """Read the jobs and the workers at each scrape."""
        self.registry.register(_StudioState(catalog, supervisor))


class _StudioState(Collector):
    def __init__(self, catalog: Catalog, supervisor: Supervisor) -> None:
        self.catalog = catalog
        self.supervisor = supervisor

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("studio_jobs", "Jobs in the catalog, by status.", labels=["status"])
        for status in Status:
            jobs.add_metric([status.value], self.catalog.count(statuses={status}))
        yield jobs
        trainings = GaugeMetricFamily(
            "studio_trainings_unfinished", "Trainings queued or running, by status.", labels=["status"]
        )
        unfinished = self.catalog.unfinished_trainings()
        for status in (Status.QUEUED, Status.RUNNING):
            trainings.add_metric([status.value], sum(1 for t in unfinished if t.status == status))
        yield trainings
        sup = self.supervisor
        yield GaugeMetricFamily("studio_queue_depth", "Jobs waiting for a worker.", value=sup.queued)
        yield GaugeMetricFamily("studio_running_jobs", "Jobs a worker paints now.", value=sup.running)
        yield GaugeMetricFamily("studio_workers_ready", "Workers up with their model loaded.", value=sup.workers_ready)
        yield CounterMetricFamily(
            "studio_worker_restarts",
            "Worker processes that died and were started again.",
            value=self.supervisor.restarts_total,
        )
        yield CounterMetricFamily(
            "studio_storage_faults",
            "Results, previews or records Studio could not store (retried).",
            value=self.supervisor.faults_total,
        )


__all__ = ["StudioMetrics"]
