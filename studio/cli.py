"""`deep-painting studio --host 127.0.0.1 --port 8100`: run the Studio service (beside the GPU).

Everything else comes from the environment (`STUDIO_*`, see studio.settings). Studio refuses to
listen beyond loopback without a token.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from types import FrameType

from pydantic import ValidationError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deep-painting studio", description="Run the Studio service.")
    parser.add_argument("--host", help="address to listen on (default: STUDIO_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: STUDIO_PORT or 8100)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)

    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from httpapi.logs import configure_logging
    from studio.app import create_app
    from studio.settings import StudioSettings
    from studio.state import StudioState

    try:
        settings = StudioSettings()
    except ValidationError as exc:
        print(f"deep-painting studio: bad settings: {exc}", file=sys.stderr)
        return 2
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    try:
        settings.check_bind(host)
    except ValueError as exc:
        print(f"deep-painting studio: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, level=args.log_level, service="studio")
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=args.log_level,
        timeout_graceful_shutdown=10,
        log_config=None if settings.log_format == "json" else LOGGING_CONFIG,  # json: uvicorn's lines through ours
    )

    class Server(uvicorn.Server):
        """Ends Studio's event streams as soon as a stop is asked for: uvicorn waits for open
        responses before the app's shutdown, and an event stream only ends with its job."""

        loop: asyncio.AbstractEventLoop | None = None

        async def serve(self, sockets: list[socket.socket] | None = None) -> None:
            self.loop = asyncio.get_running_loop()
            await super().serve(sockets)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            studio = getattr(app.state, "studio", None)
            if self.loop is not None and isinstance(studio, StudioState):
                self.loop.call_soon_threadsafe(studio.close_streams)

    Server(config).run()
    return 0


__all__ = ["main"]


if __name__ == "__main__":
    sys.exit(main())
