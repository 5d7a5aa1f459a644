"""Gallery's one settings object, read from the environment (prefix `GALLERY_`) and checked at start.

    GALLERY_STUDIO_URL=http://gpu-host:8100 GALLERY_STUDIO_TOKEN=... deep-painting gallery --port 8000

Nowhere else in Gallery reads `os.environ`. List fields take JSON, e.g.
`GALLERY_ALLOWED_ORIGINS='["https://paint.example"]'`.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from httpapi.body import DEFAULT_MAX_BODY_BYTES
from painting.fsck import SERVICE_GRACE_S
from painting.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from painting.params import MAX_ITERATIONS, MAX_SIZE, MAX_STYLES, MIN_SIZE
from painting.training import MAX_IMAGE_SIZE as MAX_TRAINING_IMAGE_SIZE
from painting.training import MIN_IMAGE_SIZE as MIN_TRAINING_IMAGE_SIZE

# The page beside the packages in a source checkout (also an editable install), wherever Gallery is
# started from; an installed wheel has no page and needs GALLERY_FRONTEND_DIR (the Gallery image sets it).
SOURCE_FRONTEND = Path(__file__).resolve().parents[1] / "frontend"


class StudioEntry(BaseModel):
    """One Studio of the pool: where it is, its token, and the name logs and metrics give it."""

    url: str = Field(description="Base URL of the Studio's HTTP API.")
    token: SecretStr | None = Field(None, description="Bearer token for its /v1 calls.")
    name: str | None = Field(None, max_length=100, description="Its name in logs and metrics (default: host:port).")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        url = url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError("a Studio's url starts with http:// or https://")
        return url

    def token_value(self) -> str | None:
        return None if self.token is None else self.token.get_secret_value() or None

    def label(self) -> str:
        return self.name or self.url.split("://", 1)[1].split("/", 1)[0]


def _default_replica_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class GallerySettings(BaseSettings):
    """Where Gallery keeps its data, where Studio is, who may open the WebSocket, and the caps."""

    model_config = SettingsConfigDict(env_prefix="GALLERY_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=0, le=65535, description="Port to listen on.")
    data_dir: Path = Field(Path("gallery-data"), description="Images and the SQLite catalog live here.")
    database_url: SecretStr | None = Field(None, description="SQLAlchemy URL; SQLite in data_dir when unset.")
    studio_url: str = Field("http://127.0.0.1:8100", description="Base URL of Studio's HTTP API.")
    studio_token: SecretStr | None = Field(None, description="Bearer token for Studio's /v1 calls.")
    studios: list[StudioEntry] = Field(
        default_factory=list,
        description='A pool of Studios, as JSON: [{"url": "http://gpu1:8100", "token": "...", "name": "gpu1"}, ...]; '
        "each painting goes to one that can paint it and will start it soonest. Empty: the one Studio of "
        "studio_url and studio_token.",
    )
    studio_grace_s: float = Field(
        300.0,
        gt=0,
        description="A Studio of a pool unreachable for this long is gone: its unfinished paintings move to another "
        "and resume there from their latest preview (its jobs are cancelled there when it returns).",
    )
    studio_poll_s: float = Field(5.0, gt=0, description="Seconds between reads of each Studio's capacity and load.")
    replicas: bool = Field(
        False,
        description="Several Gallery processes share this database (PostgreSQL) and data_dir: say so, and Gallery "
        "refuses to start on SQLite. On PostgreSQL a lease says which process drives a painting, and "
        "LISTEN/NOTIFY brings every painting's events to every process's WebSockets.",
    )
    lease_s: float = Field(
        15.0,
        gt=0,
        description="How long a Gallery process's claim on driving a painting lasts unless renewed (every third of "
        "it); a process that dies loses its paintings to another this long after.",
    )
    replica_name: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="This process's name in leases, logs and metrics; unset: this host's name and the process id.",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Other origins whose pages may use the API and /ws, e.g. https://paint.example (its own may).",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description=(
            "Host names Gallery answers to (the Host header, any port), e.g. paint.example or *.lan.example; "
            "localhost, the loopback addresses and the address a request arrived on always; empty: also the "
            'host it listens on (listening on every address: this machine\'s name); ["*"]: any (only behind a '
            "proxy that checks Host)."
        ),
    )
    frontend_dir: Path = Field(
        default_factory=lambda: SOURCE_FRONTEND,
        description="The page, served at / when the folder exists.",
    )

    gc_interval_s: float = Field(
        60.0,
        ge=0,
        description="Seconds between removals of images nothing refers to (old previews, deleted paintings); 0: never.",
    )
    gc_grace_s: float = Field(
        SERVICE_GRACE_S, ge=0, description="An image stored more recently than this is never collected."
    )

    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Seconds a client has to send a request's headers (a new connection: its first request); "
        "then 408 and the connection is closed.",
    )
    body_timeout_s: float = Field(
        120.0,
        gt=0,
        description="Seconds a client has to send a request's whole body; then 408 and the connection is closed.",
    )

    operator_token: SecretStr | None = Field(
        None, description="Bearer token that may cancel, remix or delete any painting (an operator's)."
    )
    private: bool = Field(False, description="Each browser sees only its own paintings (else all are public to see).")
    max_size: int = Field(
        1024, ge=MIN_SIZE, le=MAX_SIZE, description="Tallest painting (params.size, pixels) Gallery takes."
    )
    max_iterations: int = Field(1000, ge=1, le=MAX_ITERATIONS, description="Most iterations a painting may ask for.")
    max_unfinished_per_client: int = Field(
        3, ge=1, description="Paintings one browser may have queued or running at once; more answer 429."
    )
    max_unfinished: int = Field(100, ge=1, description="Paintings queued or running in all; more answer 429.")
    max_creations_per_minute: int = Field(
        20, ge=1, description="Paintings one address may create in a minute; more answer 429."
    )

    log_format: Literal["text", "json"] = Field(
        "text", description="text: lines for a person; json: one JSON object a line, with painting and job ids."
    )

    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1, description="Largest request body accepted.")
    max_image_bytes: int = Field(DEFAULT_MAX_BYTES, ge=1, description="Largest image file accepted.")
    max_image_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1, description="Most pixels an image may declare.")
    max_styles: int = Field(MAX_STYLES, ge=1, le=MAX_STYLES, description="Most style images per painting.")

    max_training_files: int = Field(
        2000,
        ge=1,
        description="Most image files in one collection of a training (files uploaded, or inside an archive).",
    )
    max_training_body_bytes: int = Field(
        512 * 1024 * 1024,
        ge=1,
        description="Largest POST /api/trainings body (its collections together), and the most bytes one collection "
        "may unpack to; every other request has max_body_bytes. The whole body must still arrive within "
        "body_timeout_s.",
    )
    max_training_steps: int = Field(100_000, ge=1, le=1_000_000, description="Most steps a training may ask for.")
    max_training_image_size: int = Field(
        MAX_TRAINING_IMAGE_SIZE,
        ge=MIN_TRAINING_IMAGE_SIZE,
        le=MAX_TRAINING_IMAGE_SIZE,
        description="Largest image side (params.image_size, pixels) a training may ask for.",
    )
    max_unfinished_trainings: int = Field(
        4, ge=1, description="Trainings queued or running in all (each holds a GPU for hours); more answer 429."
    )

    studio_connect_timeout_s: float = Field(5.0, gt=0, description="Connecting to Studio.")
    studio_timeout_s: float = Field(60.0, gt=0, description="One Studio call (uploads included).")
    studio_stream_timeout_s: float = Field(
        60.0, gt=0, description="Silence on the event stream before it counts as lost (Studio sends keep-alives)."
    )
    retry_initial_s: float = Field(0.5, gt=0, description="First wait before retrying an unreachable Studio.")
    retry_max_s: float = Field(30.0, gt=0, description="Longest wait between retries (capped exponential backoff).")

    @model_validator(mode="after")
    def _studios_distinct(self) -> GallerySettings:
        for what, values in (("url", [s.url for s in self.studios]), ("name", [s.label() for s in self.studios])):
            twice = sorted({v for v in values if values.count(v) > 1})
            if twice:
                raise ValueError(f"studios: each Studio needs its own {what}; {', '.join(twice)} comes twice")
        return self

    def operator_token_value(self) -> str | None:
        return None if self.operator_token is None else self.operator_token.get_secret_value() or None

    def studio_token_value(self) -> str | None:
        return None if self.studio_token is None else self.studio_token.get_secret_value() or None

    def replica(self) -> str:
        """This process's name among the replicas."""
        return self.replica_name or _default_replica_name()

    def replicas_problem(self) -> str | None:
        """Why these settings cannot run as replicas (None: they can, or are not replicas)."""
        if not self.replicas:
            return None
        url = None if self.database_url is None else self.database_url.get_secret_value()
        if url is None or not url.startswith("postgresql"):
            return (
                "replicas need PostgreSQL: several Gallery processes share one database, and SQLite is one "
                "host's file; set GALLERY_DATABASE_URL=postgresql+psycopg://user:password@host/db "
                "(or unset GALLERY_REPLICAS to run one Gallery on SQLite)"
            )
        return None

    def studio_pool(self) -> list[StudioEntry]:
        """The Studios to send paintings to: `studios`, or else the one of studio_url and studio_token."""
        if self.studios:
            return list(self.studios)
        return [StudioEntry(url=self.studio_url, token=self.studio_token, name="studio")]


__all__ = ["GallerySettings", "StudioEntry"]
