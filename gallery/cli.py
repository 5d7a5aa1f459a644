"""`deep-painting gallery --host 127.0.0.1 --port 8000`: run the Gallery service (the web app people use).

Everything else comes from the environment (`GALLERY_*`, see gallery.settings).
"""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deep-painting gallery", description="Run the Gallery service.")
    parser.add_argument("--host", help="address to listen on (default: GALLERY_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: GALLERY_PORT or 8000)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)

    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from gallery.app import create_app
    from gallery.guard import server_options
    from gallery.settings import GallerySettings
    from httpapi.logs import configure_logging

    try:
        settings = GallerySettings()
    except ValidationError as exc:
        print(f"deep-painting gallery: bad settings: {exc}", file=sys.stderr)
        return 2
    problem = settings.replicas_problem()
    if problem is not None:
        print(f"deep-painting gallery: {problem}", file=sys.stderr)
        return 2
    # The command line wins, and the settings must know: the host names served default to the bind host.
    settings = settings.model_copy(
        update={"host": args.host or settings.host, "port": settings.port if args.port is None else args.port}
    )
    configure_logging(settings.log_format, level=args.log_level, service="gallery")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        ws="websockets-sansio",
        timeout_graceful_shutdown=10,
        **server_options(settings),
        log_config=None if settings.log_format == "json" else LOGGING_CONFIG,  # json: uvicorn's lines through ours
    )
    return 0


__all__ = ["main"]


if __name__ == "__main__":
    sys.exit(main())
