"""Studio's one settings object, read from the environment (prefix `STUDIO_`) and checked at start.

    STUDIO_DATA_DIR=/srv/studio STUDIO_TOKEN=... deep-painting studio --host 0.0.0.0 --port 8100

Nowhere else in Studio reads `os.environ`. List fields take JSON, e.g.
`STUDIO_WORKER_COMMAND='["python", "-m", "pycasso", "--jit"]'`.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from httpapi.body import DEFAULT_MAX_BODY_BYTES
from painting.fsck import SERVICE_GRACE_S
from painting.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from painting.params import MAX_STYLES


def _default_worker_command() -> list[str]:
    return [sys.executable, "-m", "pycasso"]


class StudioSettings(BaseSettings):
    """Where Studio keeps its data, who may call it, how it runs its workers, and its caps."""

    model_config = SettingsConfigDict(env_prefix="STUDIO_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8100, ge=0, le=65535, description="Port to listen on.")
    data_dir: Path = Field(
        Path("studio-data"), description="Images, the SQLite catalog and the trainings' folders live here."
    )
    database_url: SecretStr | None = Field(None, description="SQLAlchemy URL; SQLite in data_dir when unset.")
    token: SecretStr | None = Field(None, description="Bearer token every /v1 call must carry.")

    workers: int = Field(1, ge=1, le=16, description="How many Pycasso worker processes to run.")
    worker_command: list[str] = Field(
        default_factory=_default_worker_command,
        min_length=1,
        description="The worker's command line, as a JSON list (default: this Python, -m pycasso).",
    )
    devices: list[str] = Field(
        default_factory=list,
        description='GPUs for the workers, as JSON, e.g. ["0", "1"]: worker i gets device i (round robin); '
        "empty: the CPU, its cores shared out between the workers.",
    )
    models_dir: Path | None = Field(
        None,
        description="Folder of generator models (.keras, .h5, .onnx, each with an optional .json sidecar) the "
        "workers serve for engine model, and where trainings put what they train; unset: none (and no training).",
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="The exact engine's arithmetic: bf16 runs its network in bfloat16 (losses in float32); "
        "auto picks bf16 where the chip has bf16 units (it reached each measured quality sooner there), "
        "else fp32. fp32 on a GPU also turns TensorFloat-32 off.",
    )
    max_restarts: int = Field(
        3, ge=0, description="Worker restarts allowed within restart_window_s; one more and Studio is not ready."
    )
    restart_window_s: float = Field(60.0, gt=0, description="The window, in seconds, that max_restarts counts in.")
    ready_timeout_s: float = Field(180.0, gt=0, description="How long a worker may take to load its model.")
    ping_interval_s: float = Field(10.0, gt=0, description="How often a ready worker is pinged.")
    ping_timeout_s: float = Field(20.0, gt=0, description="A worker that has not answered by then is hung.")
    shutdown_timeout_s: float = Field(5.0, gt=0, description="After closing stdin, how long before a kill.")
    fault_retry_s: float = Field(
        5.0, gt=0, description="When storing fails (disk full or read-only, database down): seconds between retries."
    )

    gc_interval_s: float = Field(
        60.0,
        ge=0,
        description="Seconds between removals of images nothing refers to (old previews, deleted paintings); 0: never.",
    )
    retention_s: float = Field(
        7 * 24 * 3600.0,
        gt=0,
        description="A finished job (its photo, styles and result) is deleted this many seconds after it ended.",
    )
    gc_grace_s: float = Field(
        SERVICE_GRACE_S, ge=0, description="An image stored more recently than this is never collected."
    )

    log_format: Literal["text", "json"] = Field(
        "text", description="text: lines for a person; json: one JSON object a line, with painting and job ids."
    )

    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1, description="Largest request body accepted.")
    max_image_bytes: int = Field(DEFAULT_MAX_BYTES, ge=1, description="Largest image file accepted.")
    max_image_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1, description="Most pixels an image may declare.")
    max_styles: int = Field(MAX_STYLES, ge=1, le=MAX_STYLES, description="Most style images per job.")
    memory_budget_bytes: int | None = Field(
        None,
        ge=1,
        description="Most memory one painting may need at its peak (the worker's own included, as estimated); "
        "a larger one is refused with the largest size that fits. Unset: half the memory of the device the "
        "workers paint on (the GPU's as a worker reports it, else the machine's), shared between the workers "
        "on it.",
    )
    calibrate: bool = Field(
        True,
        description="Time each worker once it is idle after starting (a few seconds, stopped by any job), so "
        "that Studio can estimate a painting's seconds.",
    )
    keepalive_s: float = Field(15.0, gt=0, description="Seconds between SSE keep-alive comments.")

    allow_cpu_training: bool = Field(
        False,
        description="Train (POST /v1/trainings) even when no worker has a GPU: a useful CycleGAN takes days on "
        "a CPU, so a CPU Studio refuses a training, with its estimated seconds per step, unless this is on.",
    )
    max_training_files: int = Field(
        10_000, ge=1, description="Most image files in one collection of a training (an archive or many files)."
    )
    max_training_upload_bytes: int = Field(
        1 * 2**30,
        ge=1,
        description="Largest POST /v1/trainings body (its collections, archives or files, together); every other "
        "request has max_body_bytes.",
    )
    max_training_bytes: int = Field(
        2 * 2**30,
        ge=1,
        description="Most bytes one collection of a training may hold, uncompressed (an archive is counted as it "
        "is unpacked).",
    )

    def token_value(self) -> str | None:
        return None if self.token is None else self.token.get_secret_value() or None

    def check_bind(self, host: str | None = None) -> None:
        """Raise ValueError when Studio would listen beyond loopback without a token."""
        host = self.host if host is None else host
        if self.token_value() is None and not is_loopback(host):
            raise ValueError(f"refusing to listen on {host} without a token: set STUDIO_TOKEN")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


__all__ = ["StudioSettings", "is_loopback"]
