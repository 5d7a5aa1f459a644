"""The Gallery app: its lifespan opens the store and catalog and starts the dispatcher and the
training follower.

The routes are in `gallery.routes` and `gallery.training_routes`; the page (`frontend/`) is served at `/`.
A training's upload (POST /api/trainings) has a body cap of its own (`max_training_body_bytes`), every
other request `max_body_bytes` (`httpapi.body.BodyLimit`'s `larger`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from gallery import routes, training_routes
from gallery.broadcast import Broadcast
from gallery.dispatcher import Dispatcher
from gallery.guard import add_guards
from gallery.hub import Hub
from gallery.limits import Limits
from gallery.metrics import GalleryMetrics
from gallery.pool import StudioPool
from gallery.settings import GallerySettings
from gallery.state import GalleryState
from gallery.training_sets import TrainingSets
from gallery.trainings import TrainingFollower
from httpapi.body import BodyLimit
from httpapi.errors import add_error_handlers
from httpapi.metrics import HttpMetrics
from painting.catalog import Catalog
from painting.fsck import start_collecting
from painting.images import ImageStore

log = logging.getLogger("gallery.app")


def create_app(
    settings: GallerySettings | None = None, *, studio_transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """The Gallery app. `studio_transport` replaces the network under the Studio client (tests)."""
    settings = GallerySettings() if settings is None else settings
    problem = settings.replicas_problem()
    if problem is not None:
        raise ValueError(problem)
    metrics = GalleryMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        url = None if settings.database_url is None else settings.database_url.get_secret_value()
        catalog = Catalog.open(url, settings.data_dir, scope="gallery")
        images = ImageStore(
            settings.data_dir / "images", max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
        )
        pool = StudioPool(
            settings.studio_pool(),
            poll_s=settings.studio_poll_s,
            grace_s=settings.studio_grace_s,
            transport=studio_transport,
            connect_timeout_s=settings.studio_connect_timeout_s,
            timeout_s=settings.studio_timeout_s,
            stream_timeout_s=settings.studio_stream_timeout_s,
        )
        hub = Hub(settings.allowed_origins)
        # One process alone (not replicas) keeps its leases across a restart under one name.
        holder = settings.replica() if settings.replicas else "gallery"
        broadcast = Broadcast.start(hub, url, sender=settings.replica())
        dispatcher = Dispatcher(
            catalog,
            images,
            pool,
            broadcast.publish,
            retry_initial_s=settings.retry_initial_s,
            retry_max_s=settings.retry_max_s,
            collect_grace_s=settings.gc_grace_s,
            on_retry=metrics.retried,
            holder=holder,
            lease_s=settings.lease_s,
        )
        dispatcher.on_move = metrics.moved
        limits = Limits(
            catalog,
            per_client=settings.max_unfinished_per_client,
            total=settings.max_unfinished,
            per_minute=settings.max_creations_per_minute,
        )
        trainings = TrainingFollower(
            catalog,
            images,
            pool,
            broadcast.publish,
            TrainingSets(settings.data_dir / "trainings"),
            retry_initial_s=settings.retry_initial_s,
            retry_max_s=settings.retry_max_s,
            collect_grace_s=settings.gc_grace_s,
            on_retry=metrics.retried,
        )
        app.state.gallery = GalleryState(settings, catalog, images, dispatcher, hub, limits, metrics, pool, trainings)
        metrics.watch(catalog, hub, pool)
        await pool.start()
        dispatcher.start()
        trainings.start()
        collector = start_collecting(images, catalog, interval_s=settings.gc_interval_s, grace_s=settings.gc_grace_s)
        try:
            yield
        finally:
            if collector is not None:
                collector.cancel()
            hub.close_all()
            await trainings.stop()
            await dispatcher.stop()
            await pool.aclose()
            broadcast.stop()
            catalog.close()

    app = FastAPI(title="Deep Painting Gallery", version="1", lifespan=lifespan, docs_url="/docs")
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        larger={("POST", training_routes.UPLOAD_PATH): settings.max_training_body_bytes},
    )
    app.add_middleware(HttpMetrics, metrics=metrics)
    add_guards(app, settings)  # outside the body cap: hosts, origins, slow bodies, security headers
    add_error_handlers(app)
    app.include_router(routes.api)
    app.include_router(training_routes.api)
    app.include_router(routes.websocket)
    app.include_router(routes.health)
    app.include_router(routes.metrics_router)
    if settings.frontend_dir.is_dir():
        app.mount("/", StaticFiles(directory=settings.frontend_dir, html=True), name="frontend")
    else:
        log.warning(
            "no page to serve: %s is not a folder (set GALLERY_FRONTEND_DIR); the API works", settings.frontend_dir
        )
    return app


__all__ = ["create_app"]
