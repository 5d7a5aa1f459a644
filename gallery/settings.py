"""Gallery's one settings object, read from the environment (prefix `GALLERY_`) and checked at start.

    GALLERY_STUDIO_URL=http://gpu-host:8100 GALLERY_STUDIO_TOKEN=... deep-painting gallery --port 8000

Nowhere else in Gallery reads `os.environ`. List fields take JSON, e.g.
`GALLERY_ALLOWED_ORIGINS='["https://paint.example"]'`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from httpapi.body import DEFAULT_MAX_BODY_BYTES
from painting.fsck import SERVICE_GRACE_S
from painting.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from painting.params import MAX_ITERATIONS, MAX_SIZE, MAX_STYLES, MIN_SIZE

# The page beside the packages in a source checkout (also an editable install), wherever Gallery is
# started from; an installed wheel has no page and needs GALLERY_FRONTEND_DIR (the Gallery image sets it).
SOURCE_FRONTEND = Path(__file__).resolve().parents[1] / "frontend"


class GallerySettings(BaseSettings):
    """Where Gallery keeps its data, where Studio is, who may open the WebSocket, and the caps."""

    model_config = SettingsConfigDict(env_prefix="GALLERY_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=0, le=65535, description="Port to listen on.")
    data_dir: Path = Field(Path("gallery-data"), description="Images and the SQLite catalog live here.")
    database_url: SecretStr | None = Field(None, description="SQLAlchemy URL; SQLite in data_dir when unset.")
    studio_url: str = Field("http://127.0.0.1:8100", description="Base URL of Studio's HTTP API.")
    studio_token: SecretStr | None = Field(None, description="Bearer token for Studio's /v1 calls.")
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

    studio_connect_timeout_s: float = Field(5.0, gt=0, description="Connecting to Studio.")
    studio_timeout_s: float = Field(60.0, gt=0, description="One Studio call (uploads included).")
    studio_stream_timeout_s: float = Field(
        60.0, gt=0, description="Silence on the event stream before it counts as lost (Studio sends keep-alives)."
    )
    retry_initial_s: float = Field(0.5, gt=0, description="First wait before retrying an unreachable Studio.")
    retry_max_s: float = Field(30.0, gt=0, description="Longest wait between retries (capped exponential backoff).")

    def operator_token_value(self) -> str | None:
        return None if self.operator_token is None else self.operator_token.get_secret_value() or None

    def studio_token_value(self) -> str | None:
        return None if self.studio_token is None else self.studio_token.get_secret_value() or None


__all__ = ["GallerySettings"]
