"""The Studio app: its lifespan opens the store, re-queues unfinished jobs and trainings and starts the workers.

The routes are in `studio.routes`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from httpapi.body import BodyLimit
from httpapi.errors import add_error_handlers
from httpapi.metrics import HttpMetrics
from painting.catalog import Catalog
from painting.fsck import start_collecting
from painting.images import ImageStore
from studio import routes
from studio.estimates import Estimator
from studio.events import JobEvents
from studio.jobs import Jobs, start_forgetting
from studio.metrics import StudioMetrics
from studio.runner import JobRunner
from studio.settings import StudioSettings
from studio.state import StudioState
from studio.supervisor import Supervisor
from studio.training_events import TrainingEvents
from studio.training_runner import Handlers, TrainingRunner
from studio.trainings import TrainingCaps, TrainingFolders, Trainings

TRAINING_UPLOAD = ("POST", "/v1/trainings")  # the one route whose body may be larger than a painting's


def create_app(settings: StudioSettings | None = None) -> FastAPI:
    """The Studio app. Its lifespan opens the store, re-queues unfinished jobs and trainings and starts the workers."""
    settings = StudioSettings() if settings is None else settings
    metrics = StudioMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        url = None if settings.database_url is None else settings.database_url.get_secret_value()
        catalog = Catalog.open(url, settings.data_dir, scope="studio")
        images = ImageStore(
            settings.data_dir / "images", max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
        )
        events = JobEvents(catalog)
        estimator_ref: list[Estimator] = []  # made below, once the supervisor it asks exists

        def pass_budget() -> int | None:
            return estimator_ref[0].pass_budget_bytes() if estimator_ref else None

        runner = JobRunner(
            catalog, images, events, on_iteration_seconds=metrics.iteration_seconds.observe, pass_budget=pass_budget
        )
        training_events = TrainingEvents(catalog)
        folders = TrainingFolders(settings.data_dir / "trainings")
        models_dir = settings.models_dir.resolve() if settings.models_dir is not None else None
        training_runner = TrainingRunner(catalog, images, training_events, folders, models_dir=models_dir)
        handlers = Handlers(runner, training_runner)
        supervisor = Supervisor(
            settings.worker_command,
            handler=handlers,
            workers=settings.workers,
            max_restarts=settings.max_restarts,
            restart_window_s=settings.restart_window_s,
            ready_timeout_s=settings.ready_timeout_s,
            ping_interval_s=settings.ping_interval_s,
            ping_timeout_s=settings.ping_timeout_s,
            shutdown_timeout_s=settings.shutdown_timeout_s,
            fault_retry_s=settings.fault_retry_s,
            devices=settings.devices,
            env={
                "PYCASSO_PRECISION": settings.precision,
                **({"PYCASSO_MODELS_DIR": str(models_dir)} if models_dir is not None else {}),
            },
            calibrate=settings.calibrate,
        )
        # Workers share the machine's memory; on GPUs, each device is shared by the workers given it.
        sharing = -(-settings.workers // len(settings.devices)) if settings.devices else settings.workers
        estimator = Estimator(supervisor, budget_bytes=settings.memory_budget_bytes, workers_per_device=sharing)
        estimator_ref.append(estimator)
        jobs = Jobs(
            catalog,
            images,
            events,
            cancel_running=supervisor.cancel,
            weights_running=supervisor.change_weights,
            engine_problem=supervisor.engine_problem,
            models=supervisor.models,
            max_styles=settings.max_styles,
            estimator=estimator,
            collect_grace_s=settings.gc_grace_s,
        )
        trainings = Trainings(
            catalog,
            images,
            training_events,
            folders,
            supervisor,
            models_dir=models_dir,
            cancel_running=supervisor.cancel,
            allow_cpu=settings.allow_cpu_training,
            caps=TrainingCaps(
                max_files=settings.max_training_files,
                max_bytes=settings.max_training_bytes,
                max_image_bytes=settings.max_image_bytes,
                max_image_pixels=settings.max_image_pixels,
            ),
            collect_grace_s=settings.gc_grace_s,
        )
        app.state.studio = StudioState(settings, jobs, events, images, supervisor, metrics, estimator, trainings)
        metrics.watch(catalog, supervisor)
        trainings.sweep_folders()
        for job_id in handlers.requeue_unfinished():
            supervisor.submit(job_id)
        await supervisor.start()
        collector = start_collecting(images, catalog, interval_s=settings.gc_interval_s, grace_s=settings.gc_grace_s)
        forgetter = start_forgetting(jobs, every_s=min(settings.retention_s, 600.0), older_than_s=settings.retention_s)
        try:
            yield
        finally:
            forgetter.cancel()
            if collector is not None:
                collector.cancel()
            await supervisor.stop()
            catalog.close()

    app = FastAPI(
        title="Deep Painting Studio", version="1", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.add_middleware(
        BodyLimit, max_bytes=settings.max_body_bytes, larger={TRAINING_UPLOAD: settings.max_training_upload_bytes}
    )
    app.add_middleware(HttpMetrics, metrics=metrics)
    add_error_handlers(app)
    app.add_exception_handler(routes.Unauthorized, routes.unauthorized)
    app.include_router(routes.v1)
    app.include_router(routes.health)
    return app


__all__ = ["create_app"]
