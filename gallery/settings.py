"""Gallery's one settings object, read from the environment (prefix `GALLERY_`) and checked at start.

    GALLERY_STUDIO_URL=http://gpu-host:8100 GALLERY_STUDIO_TOKEN=... deep-painting gallery --port 8000

Nowhere else in Gallery reads `os.environ`. List fields take JSON, e.g.
`GALLERY_ALLOWED_ORIGINS='["https://paint.example"]'`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from httpapi.body import DEFAULT_MAX_BODY_BYTES
from painting.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from painting.params import MAX_STYLES

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
        description="Origins allowed to open /ws, e.g. https://paint.example; empty: the same origin only.",
    )
    frontend_dir: Path = Field(
        default_factory=lambda: SOURCE_FRONTEND,
        description="The page, served at / when the folder exists.",
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

    def studio_token_value(self) -> str | None:
        return None if self.studio_token is None else self.studio_token.get_secret_value() or None


__all__ = ["GallerySettings"]
