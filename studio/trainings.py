"""Studio's trainings (issue 15): check and store a new training, describe, list, cancel and delete one.

    trainings = Trainings(catalog, images, events, folders, hardware, models_dir=..., cancel_running=...)
    record, created = trainings.create(params_json, {"photos": [("photos.zip", zip_bytes)],
                                                     "paintings": [("a.png", a), ("b.png", b), ...]})
    trainings.describe(record.id)   # the API's JSON
    trainings.cancel(record.id)     # stop it, keeping its checkpoint
    trainings.remove_files(trainings.forget(record.id))   # delete it, its folder (its model stays)
    step_seconds(params, calibration)   # what a step would take on these workers (a CPU refusal says it)

A training is a Studio job of another kind: a CycleGAN or DCGAN trained by a Pycasso worker from
image collections the caller uploads (`painting.training` has the parameters, `painting.archives`
the safe unpacking). Its images live in a folder on the disk Studio shares with its workers, not in
the image store: thousands of them, read by the worker at each (re)start:

    <data_dir>/trainings/<id>/data/<collection>/<n>.<png|jpg|webp|heic>   the checked images, in order
    <data_dir>/trainings/<id>/checkpoints/                                the worker's checkpoints

The folder is written whole in a hidden temp folder beside it and renamed into place, then the record
is stored; any refusal or failure before that leaves nothing (no folder, no record). What a queued
training does on a worker is `studio.training_runner`'s business; its event stream is
`studio.training_events`'.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from httpapi.errors import BadRequest
from painting.archives import archive_format, check_images, from_files, unpack
from painting.catalog import Catalog
from painting.errors import ArchiveRejected, NotFound
from painting.estimate import Calibration
from painting.fsck import SERVICE_GRACE_S, collect
from painting.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, ImageStore
from painting.progress import json_safe
from painting.records import Status, TrainingRecord, check_painting_id, new_painting_id
from painting.training import MIN_IMAGES, TrainingParams, collections_for, parse_training_params
from studio.training_events import TrainingEvents

log = logging.getLogger("studio.trainings")

# What one training step costs, in floating-point operations, at each kind's reference settings
# (counted with bench/training.py): a CycleGAN step at 256 px, batch 1, filters 64 (two generators and
# two discriminators, forward and backward) about 1.8 TFLOP; a DCGAN step at 32 px, batch 128,
# filters 64 about 56 GFLOP. A step scales with the pixels, the square of the width and the batch.
STEP_FLOP: dict[str, float] = {"cyclegan": 1.8e12, "dcgan": 5.6e10}
REFERENCE: dict[str, tuple[int, int, int]] = {"cyclegan": (256, 64, 1), "dcgan": (32, 64, 128)}  # size, filters, batch
# One VGG19 evaluation (forward to block5_conv2 and the input's gradient), which a worker's calibration
# times, costs about this many FLOP a pixel: a worker's FLOP/s is this over its seconds a pixel.
VGG_FLOP_PER_PIXEL = 1.2e6
# A training step keeps the arithmetic units less busy than a VGG evaluation does (small convolutions,
# normalisation, the optimisers' updates), and it runs in float32 where a worker may time VGG19 in
# bfloat16. Measured in one session on a 2-core AVX-512 CPU with bf16 units: the calibration gave
# 7.2e-6 s a pixel in bf16 (1.66e11 FLOP/s by VGG_FLOP_PER_PIXEL) and 9.5e-6 in fp32 (1.27e11), while a
# DCGAN step (32 px, batch 128, filters 64) took 0.75 s, about 7.5e10 FLOP/s (the CycleGAN at 256 px,
# 25 s, about 7.2e10). So a training step runs at this share of the calibration's FLOP/s, by the
# precision the worker timed itself in.
TRAINING_EFFICIENCY: dict[str, float] = {"bf16": 0.45, "fp32": 0.6}
TEMP_PREFIX = ".incoming-"  # a training folder being written; a Studio killed meanwhile leaves one
MODEL_SUFFIXES = (".keras", ".h5", ".onnx", ".json")  # the files of a model in the models folder


def step_flop(params: TrainingParams) -> float:
    """Floating-point operations of one training step with these params (see STEP_FLOP)."""
    resolved = params.resolved()
    size, filters, batch = REFERENCE[resolved.kind]
    assert resolved.image_size is not None and resolved.batch_size is not None, "resolved() fills them"
    return (
        STEP_FLOP[resolved.kind]
        * (resolved.image_size / size) ** 2
        * (resolved.filters / filters) ** 2
        * (resolved.batch_size / batch)
    )


def step_seconds(params: TrainingParams, calibration: Calibration | None, precision: str = "fp32") -> float | None:
    """Seconds one training step would take on a worker that timed itself as `calibration`, its
    network in `precision` ("fp32" or "bf16", as its `ready` says); None when there is no
    calibration (or it says nothing of the worker's speed)."""
    if calibration is None or calibration.eval_pixel_s <= 0:
        return None
    share = TRAINING_EFFICIENCY.get(precision, TRAINING_EFFICIENCY["fp32"])
    flop_per_s = VGG_FLOP_PER_PIXEL / calibration.eval_pixel_s * share
    return step_flop(params) / flop_per_s


def _duration(seconds: float) -> str:
    """A duration for a person: "0.8 s", "25 s", "14 min", "4.5 h", "14 h", "3.5 days"."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 10 * 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.1f} days"


class Hardware(Protocol):
    """What Trainings reads of the workers (`studio.supervisor.Supervisor`)."""

    def devices_said(self) -> list[str]: ...

    def precisions_said(self) -> list[str]: ...

    def calibration(self) -> Calibration | None: ...

    def usable_models(self) -> list[str] | None: ...


def on_gpu(device: str) -> bool:
    """Whether a worker's `ready` device names a GPU (a TensorFlow device such as "/device:GPU:0";
    the CPU is "CPU", or "CPU (...)")."""
    return not device.strip().upper().startswith("CPU")


class TrainingFolders:
    """The trainings' folders under `root` (`<data_dir>/trainings`): one per training, by its id."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, training_id: str) -> Path:
        """The training's folder; raises InvalidId (a NotFound) for an id that is not one (never a path)."""
        return self.root / check_painting_id(training_id)

    def data(self, training_id: str) -> Path:
        return self.folder(training_id) / "data"

    def checkpoints(self, training_id: str) -> Path:
        return self.folder(training_id) / "checkpoints"

    def exists(self, training_id: str) -> bool:
        return self.data(training_id).is_dir()

    def write(self, training_id: str, collections: Mapping[str, list[bytes]]) -> Path:
        """Write the images of each collection as `data/<collection>/<n>.<suffix>` (n from 0, padded,
        so the worker reads them in the upload's order) and an empty `checkpoints/`, all in a hidden
        temp folder renamed into place at the end; the folder. A failure leaves nothing behind."""
        final = self.folder(training_id)
        self.root.mkdir(parents=True, exist_ok=True)
        temp = self.root / f"{TEMP_PREFIX}{training_id}-{secrets.token_hex(4)}"
        try:
            for name, images in collections.items():
                where = temp / "data" / name
                where.mkdir(parents=True)
                width = max(5, len(str(len(images))))
                for n, data in enumerate(images):
                    _write_synced(where / f"{n:0{width}d}{_suffix(data)}", data)
                _fsync_dir(where)
            (temp / "checkpoints").mkdir()
            _fsync_dir(temp / "data")
            _fsync_dir(temp)
            os.rename(temp, final)  # fails if a folder of that id exists: ids are fresh, never reused
            _fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        return final

    def remove(self, training_id: str) -> None:
        """Delete the training's folder, if it has one."""
        with contextlib.suppress(NotFound):
            shutil.rmtree(self.folder(training_id), ignore_errors=True)

    def sweep(self, keep: Callable[[str], bool]) -> list[str]:
        """At start: remove the temp folders a killed Studio left, and every training folder whose id
        `keep` refuses (no record: a Studio killed between writing the folder and the record, or a
        worker that checkpointed into a folder deleted under it); the names removed."""
        if not self.root.is_dir():
            return []
        removed = []
        for path in self.root.iterdir():
            if path.name.startswith(TEMP_PREFIX) or not keep(path.name):
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
                removed.append(path.name)
        return removed


def _suffix(data: bytes) -> str:
    """A file suffix for an image's bytes (the worker decodes by content; the suffix is for people)."""
    if data.startswith(b"\x89PNG"):
        return ".png"
    if data.startswith(b"\xff\xd8"):
        return ".jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return ".heic" if data[4:8] == b"ftyp" else ".img"


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "xb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class TrainingCaps:
    """How much one collection of a training may hold, and each image's caps."""

    max_files: int = 10_000
    max_bytes: int = 2 * 2**30
    max_image_bytes: int = DEFAULT_MAX_BYTES
    max_image_pixels: int = DEFAULT_MAX_PIXELS


class Trainings:
    """The trainings of one Studio: creating, describing, listing, cancelling and deleting them.

    `cancel_running(training_id)` asks the workers to stop one (`Supervisor.cancel`): "running" when
    a worker has it (it checkpoints, then confirms with `cancelled`), anything else when none does.
    `hardware` says what the workers run on and how fast they are (`Supervisor`).
    """

    def __init__(
        self,
        catalog: Catalog,
        images: ImageStore,
        events: TrainingEvents,
        folders: TrainingFolders,
        hardware: Hardware,
        *,
        models_dir: Path | None,
        cancel_running: Callable[[str], str],
        allow_cpu: bool = False,
        caps: TrainingCaps | None = None,
        collect_grace_s: float = SERVICE_GRACE_S,
    ) -> None:
        self.catalog = catalog
        self.images = images
        self.events = events
        self.folders = folders
        self.hardware = hardware
        self.models_dir = models_dir
        self.cancel_running = cancel_running
        self.allow_cpu = allow_cpu
        self.caps = caps or TrainingCaps()
        self.collect_grace_s = collect_grace_s

    # --- creating -----------------------------------------------------------------------------

    def create(
        self,
        params_text: str | bytes | None,
        uploads: Mapping[str, list[tuple[str, bytes]]],
        *,
        idempotency_key: str | None = None,
    ) -> tuple[TrainingRecord, bool]:
        """Check everything, then write the training's folder and store its record, queued; (the
        training, whether it is new). `uploads`: the file parts by part name, each (file name, bytes):
        per collection of the kind, ONE archive (zip or tar, compressed or not) or the image files.

        Raises BadRequest (422: params, no models folder, a CPU Studio, a model name in use, parts
        missing or stray), ArchiveRejected (422: an unsafe or damaged archive, unreadable images, too
        few) and ArchiveTooLarge (413); nothing is stored then. A key used before returns that
        training and stores nothing (checked first, so a retry gets the first answer).
        """
        try:
            params = parse_training_params(params_text)
        except ValueError as exc:
            raise BadRequest(f"params: {exc}") from None
        if idempotency_key is not None:
            if not 1 <= len(idempotency_key) <= 200:
                raise BadRequest("Idempotency-Key: must be 1 to 200 characters")
            existing = self.catalog.find_training_by_idempotency_key(idempotency_key)
            if existing is not None:
                return existing, False
        if self.models_dir is None:
            raise BadRequest(
                "This Studio has no models folder to put a trained model in: set STUDIO_MODELS_DIR to train."
            )
        refusal = self.cpu_refusal(params)
        if refusal is not None:
            raise BadRequest(refusal)
        training_id = new_painting_id()
        try:
            resolved = params.resolved(training_id)
            name = resolved.model_name(training_id)
        except ValueError as exc:
            raise BadRequest(f"params: {exc}") from None
        self._check_name_free(name)
        collections = self._collections(resolved.kind, uploads)
        self.folders.write(training_id, collections)
        try:
            record = self.catalog.create_training(
                kind=resolved.kind,
                params=resolved.model_dump(mode="json"),
                steps=resolved.steps,
                model_name=name,
                counts={collection: len(images) for collection, images in collections.items()},
                training_id=training_id,
                idempotency_key=idempotency_key,
            )
        except BaseException:
            self.folders.remove(training_id)
            raise
        if record.id != training_id:  # the same key, sent twice at once: the other one won
            self.folders.remove(training_id)
            return record, False
        log.info("training %s: %s, %s, %d steps", training_id, resolved.kind, record.counts, resolved.steps)
        return record, True

    def cpu_refusal(self, params: TrainingParams) -> str | None:
        """Why this Studio refuses to train on its CPU (a sentence with the estimated seconds a step),
        or None: a worker has a GPU, or STUDIO_ALLOW_CPU_TRAINING is on."""
        if self.allow_cpu:
            return None
        devices = self.hardware.devices_said()
        if any(on_gpu(device) for device in devices):
            return None
        allow = "Set STUDIO_ALLOW_CPU_TRAINING=true to train anyway."
        if not devices:
            return (
                "No worker of this Studio has started yet, so whether it has a GPU is not known: try again once "
                f"it is ready (GET /health/ready). {allow}"
            )
        resolved = params.resolved()
        precisions = self.hardware.precisions_said()
        seconds = step_seconds(resolved, self.hardware.calibration(), precisions[0] if precisions else "fp32")
        what = f"a {resolved.kind} step at {resolved.image_size} px (batch {resolved.batch_size})"
        if seconds is None:
            estimate = f"{what} would take a time that is unknown until the worker has timed itself"
        else:
            total = _duration(seconds * resolved.steps)
            estimate = f"{what} would take about {_duration(seconds)} here ({resolved.steps} steps: about {total})"
        return f"This Studio has no GPU: {estimate}. {allow}"

    def _check_name_free(self, name: str) -> None:
        """BadRequest when the model would overwrite one in the models folder, or one an unfinished
        training will write."""
        assert self.models_dir is not None, "create checks it first"
        if any((self.models_dir / f"{name}{suffix}").exists() for suffix in MODEL_SUFFIXES):
            raise BadRequest(
                f"params: name: a model named {name!r} is in the models folder already; choose another name"
            )
        if any(t.model_name == name for t in self.catalog.unfinished_trainings()):
            raise BadRequest(f"params: name: a training under way will make a model named {name!r}; choose another")

    def _collections(self, kind: str, uploads: Mapping[str, list[tuple[str, bytes]]]) -> dict[str, list[bytes]]:
        """Each collection of the kind, unpacked and checked: its images' bytes, in order."""
        wanted = collections_for(kind)
        stray = sorted(set(uploads) - set(wanted))
        if stray:
            raise BadRequest(f"{stray[0]}: a {kind} training takes {' and '.join(wanted)}, not {', '.join(stray)}")
        checked = {}
        for name in wanted:
            parts = uploads.get(name) or []
            if not parts:
                raise BadRequest(f"{name}: missing: send one archive (zip or tar) or the image files")
            caps = self.caps
            if len(parts) == 1 and archive_format(parts[0][1]) is not None:
                try:
                    files = unpack(parts[0][1], max_files=caps.max_files, max_bytes=caps.max_bytes)
                except ArchiveRejected as exc:
                    raise type(exc)(f"{name}: {exc}") from None
            else:
                try:
                    files = from_files(parts, max_files=caps.max_files, max_bytes=caps.max_bytes)
                except ArchiveRejected as exc:
                    raise type(exc)(f"{name}: {exc}") from None
            checked[name] = check_images(
                files,
                min_images=MIN_IMAGES[kind],
                what=name,
                max_pixels=caps.max_image_pixels,
                max_image_bytes=caps.max_image_bytes,
            )
        return checked

    # --- reading ------------------------------------------------------------------------------

    def describe(self, training_id: str, *, usable: list[str] | None = None) -> dict[str, Any]:
        """The training as the API shows it; raises NotFound. `usable`: the models the workers serve
        (asked of them when not given)."""
        record = self.catalog.get_training(training_id)
        if usable is None:
            usable = self.hardware.usable_models() or []
        remaining = None
        if record.seconds_per_step is not None and not record.finished:
            remaining = round(max(0, record.steps - record.step) * record.seconds_per_step, 1)
        return json_safe(
            {
                "id": record.id,
                "state": record.status.value,
                "kind": record.kind,
                "params": dict(record.params),
                "step": record.step,
                "steps": record.steps,
                "losses": dict(record.losses) if record.losses is not None else None,
                "seconds_per_step": record.seconds_per_step,
                "remaining_s": remaining,
                "checkpoint_step": record.checkpoint_step,
                "sample_image": record.sample_image,
                "model": {"name": record.model_name, "ready": record.model_name in usable},
                "counts": dict(record.counts),
                "error": record.error,
                "attempts": record.attempts,
                "created_at": record.created_at.isoformat(),
                "updated_at": record.updated_at.isoformat(),
            }
        )

    def newest(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest trainings first, as `describe` shows them."""
        usable = self.hardware.usable_models() or []
        described = []
        for record in self.catalog.newest_trainings(limit=limit):
            with contextlib.suppress(NotFound):  # deleted meanwhile
                described.append(self.describe(record.id, usable=usable))
        return described

    # --- ending -------------------------------------------------------------------------------

    def cancel(self, training_id: str) -> TrainingRecord:
        """Stop a training: at once when queued; when running, its worker checkpoints and stops (the
        checkpoint stays in its folder). Raises NotFound."""
        record = self.catalog.get_training(training_id)
        if record.finished:
            return record
        if self.cancel_running(training_id) != "running":
            self.events.finish(training_id, Status.CANCELLED)
        return self.catalog.get_training(training_id)

    def forget(self, training_id: str) -> TrainingRecord:
        """Stop the training if a worker runs it, then delete its record (on the event loop: it
        tells the supervisor and ends the training's streams); the record it was. Then call
        `remove_files` with it, in a thread if you like (it may be thousands of files). The model it
        exported, if it finished, stays in the models folder: it is served and may be in use; remove
        its files there to retire it. Raises NotFound."""
        record = self.catalog.get_training(training_id)
        if not record.finished:
            self.cancel_running(training_id)
        self.catalog.delete_training(training_id)
        self.events.forgotten(training_id)
        return record

    def remove_files(self, record: TrainingRecord) -> None:
        """Delete a forgotten training's folder (images and checkpoints) and its sample image, unless
        something else refers to it (one stored within the grace period goes with the next collection)."""
        self.folders.remove(record.id)
        if record.sample_image is not None:
            collect(self.images, self.catalog, [record.sample_image], grace_s=self.collect_grace_s)

    def sweep_folders(self) -> list[str]:
        """At start: remove the folders no training owns (see `TrainingFolders.sweep`)."""

        def owned(name: str) -> bool:
            try:
                self.catalog.get_training(name)
            except NotFound:
                return False
            return True

        removed = self.folders.sweep(owned)
        if removed:
            log.info("removed %d training folder(s) no training owns: %s", len(removed), ", ".join(removed[:5]))
        return removed


__all__ = [
    "STEP_FLOP",
    "TRAINING_EFFICIENCY",
    "VGG_FLOP_PER_PIXEL",
    "Hardware",
    "TrainingCaps",
    "TrainingFolders",
    "Trainings",
    "on_gpu",
    "step_flop",
    "step_seconds",
]
