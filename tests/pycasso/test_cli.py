"""`deep-painting paint` end to end, as a person runs it."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pycasso.imaging import encode_png

CLI = shutil.which("deep-painting") or str(Path(__file__).parents[2] / ".venv/bin/deep-painting")


def paint(*args: str | int | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, "paint", *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, content_rgb, style_rgb):
    folder = tmp_path_factory.mktemp("inputs")
    (folder / "content.png").write_bytes(encode_png(content_rgb))
    (folder / "style.png").write_bytes(encode_png(style_rgb))
    Image.fromarray(style_rgb).save(folder / "style.jpg", quality=90)
    return folder


@pytest.mark.slow
def test_paint_writes_the_png_intermediates_and_stats(inputs, tmp_path):
    out = tmp_path / "result" / "painted.png"
    stats = tmp_path / "stats.json"
    done = paint(
        inputs / "content.png",
        inputs / "style.png",
        inputs / "style.jpg",
        "-o",
        out,
        "--size",
        48,
        "--iterations",
        6,
        "--save-every",
        3,
        "--stats",
        stats,
        "--style-blend",
        2,
        1,
        "--seed",
        3,
    )
    assert done.returncode == 0, done.stderr
    with Image.open(out) as image:
        assert (image.format, image.size) == ("PNG", (64, 48))
    assert (tmp_path / "result" / "painted-0003.png").is_file()
    assert not (tmp_path / "result" / "painted-0006.png").exists()  # the final one is the output itself
    data = json.loads(stats.read_text())
    assert set(data) == {"iterations", "evaluations", "seconds", "seconds_per_evaluation", "loss"}
    assert set(data["loss"]) == {"total", "content", "style", "tv"}
    assert data["iterations"] == 6 and data["evaluations"] >= 6
    assert data["seconds_per_evaluation"] == pytest.approx(data["seconds"] / data["evaluations"], rel=1e-2)
    # progress: iteration counter, loss and ETA on stderr, nothing on stdout
    assert "6/6" in done.stderr and "ETA" in done.stderr and "loss" in done.stderr
    assert done.stdout == ""


def _bomb_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("make_content", "extra", "words"),
    [
        (None, [], "no such file"),
        (b"", [], "empty (0 bytes)"),
        (b"just some text, not a picture\n", [], "not an image"),
        ("truncated", [], "damaged or truncated"),
        ("bomb", [], "megapixels"),
        ("ok", ["--size", "8"], "size"),
        ("ok", ["--iterations", "0"], "iterations"),
        ("ok", ["--style-blend", "1", "1"], "style_blend has 2 weights"),
    ],
)
def test_bad_inputs_exit_2_with_one_clear_line(inputs, tmp_path, make_content, extra, words):
    content = tmp_path / "content.png"
    if make_content == "ok":
        content = inputs / "content.png"
    elif make_content == "truncated":
        content.write_bytes((inputs / "content.png").read_bytes()[:300])
    elif make_content == "bomb":
        content.write_bytes(_bomb_png())
    elif make_content is not None:
        content.write_bytes(make_content)
    out = tmp_path / "out.png"
    done = paint(content, inputs / "style.png", "-o", out, *extra, timeout=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deep-painting paint: error:"), done.stderr
    assert words in lines[0]
    assert "Traceback" not in done.stderr
    assert not out.exists()


def test_an_unsupported_output_format_is_refused(inputs, tmp_path):
    done = paint(inputs / "content.png", inputs / "style.png", "-o", tmp_path / "out.gif", timeout=60)
    assert done.returncode == 2 and "must end in .png" in done.stderr


def test_the_dispatcher_lists_subcommands_and_refuses_unknown_ones():
    listing = subprocess.run([CLI, "--help"], capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0 and "paint" in listing.stdout
    unknown = subprocess.run([CLI, "sculpt"], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "unknown subcommand 'sculpt'" in unknown.stderr


def test_example_writes_a_content_and_style_pair(tmp_path):
    done = subprocess.run([CLI, "example", tmp_path], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for name in ("content.png", "style.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and min(image.size) >= 200


@pytest.mark.slow
def test_the_same_seed_gives_the_same_pixels_in_separate_processes(inputs, tmp_path):
    # 256 px: large enough that TensorFlow splits work across threads (the source of run-to-run
    # differences that pycasso._tf rules out); two short runs in two processes must agree bit for bit.
    outs = [tmp_path / "a.png", tmp_path / "b.png"]
    for out in outs:
        done = paint(
            inputs / "content.png",
            inputs / "style.png",
            "-o",
            out,
            "--size",
            256,
            "--iterations",
            3,
            "--init",
            "noise",
            "--seed",
            5,
        )
        assert done.returncode == 0, done.stderr
    with Image.open(outs[0]) as a, Image.open(outs[1]) as b:
        diff = np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16))
    # Bit for bit on a quiet machine. Under heavy load (other test suites on the same 2 cores) one
    # channel of one pixel has once come out a level apart, a last-bit difference we have not traced
    # yet; the bug this guards against moved every pixel by ~3 levels on average.
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).mean())


@pytest.mark.parametrize("target", ["output", "stats"])
def test_an_output_that_is_a_folder_is_refused_before_painting(inputs, tmp_path, target):
    folder = tmp_path / "taken.png"
    folder.mkdir()
    out, stats = (folder, tmp_path / "s.json") if target == "output" else (tmp_path / "o.png", folder)
    done = paint(inputs / "content.png", inputs / "style.png", "-o", out, "--stats", stats, timeout=60)
    assert done.returncode == 2 and "is a folder" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("missing", ["tensorflow", "scipy"])
def test_without_the_engine_extra_paint_says_how_to_install_it(inputs, tmp_path, missing):
    # A services-only install, as in the Gallery image: the module cannot be imported at all.
    code = (
        f"import sys; sys.modules[{missing!r}] = None; from deep_painting.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "paint",
            str(inputs / "content.png"),
            str(inputs / "style.png"),
            "-o",
            str(tmp_path / "out.png"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert f"({missing} is missing)" in done.stderr and "pip install 'deep-painting[engine]'" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out.png").exists()


def test_the_fast_engine_paints_from_the_command_line_in_one_pass(inputs, tmp_path):
    out, stats = tmp_path / "fast.png", tmp_path / "fast.json"
    args = ("--engine", "fast", "--strength", "0.6", "--size", 48, "--stats", stats)
    done = paint(inputs / "content.png", inputs / "style.png", "-o", out, *args)
    assert done.returncode == 0, done.stderr
    assert "fast engine" in done.stderr
    with Image.open(out) as image:
        assert image.size == (64, 48)
    assert json.loads(stats.read_text())["iterations"] == 1
    refused = paint(inputs / "content.png", inputs / "style.png", "-o", out, "--engine", "fast", "--iterations", 5)
    assert refused.returncode == 2
    assert refused.stderr.strip().endswith(
        "iterations: does not apply to the fast engine (it reads builtin_styles, "
        "preserve_colors, size, strength, style_blend)"
    )
