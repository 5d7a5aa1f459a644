"""The framed protocol: round trips, malformed input, and no TensorFlow on import."""

import io
import json
import math
import subprocess
import sys

import pytest

from painting.progress import ProgressPoint
from pycasso import port


def frames(*payloads: bytes) -> io.BytesIO:
    out = io.BytesIO()
    for p in payloads:
        port.write_frame(out, p)
    out.seek(0)
    return out


def next_message(stream: io.BytesIO) -> port.Message:
    """The next message, which the test expects to be there (not the end of the stream)."""
    message = port.read_message(stream)
    assert message is not None, "the stream ended"
    return message


def test_a_message_with_attachments_round_trips():
    buf = io.BytesIO()
    msg = port.paint(
        "job-1", {"size": 64}, b"\x89PNG content", [b"style-a", b"style-b"], init=b"init", start_iteration=4
    )
    port.write_message(buf, msg)
    buf.seek(0)
    back = next_message(buf)
    assert back.type == "paint" and back.job == "job-1"
    assert back.get("params") == {"size": 64} and back.get("start_iteration") == 4
    assert back.blobs("content") == [b"\x89PNG content"]
    assert back.blobs("style") == [b"style-a", b"style-b"]
    assert back.blobs("init") == [b"init"]
    assert port.read_message(buf) is None  # clean end of stream


def test_the_wire_format_is_a_4_byte_big_endian_length_then_json_then_raw_attachments():
    buf = io.BytesIO()
    port.write_message(buf, port.done("j", {"iterations": 1}, b"PNGDATA"))
    raw = buf.getvalue()
    n = int.from_bytes(raw[:4], "big")
    header = json.loads(raw[4 : 4 + n])
    assert header == {"type": "done", "job": "j", "stats": {"iterations": 1}, "attachments": ["result"]}
    assert raw[4 + n : 8 + n] == (7).to_bytes(4, "big") and raw[8 + n :] == b"PNGDATA"


def test_non_finite_losses_travel_as_null_and_come_back_as_nan():
    buf = io.BytesIO()
    point = ProgressPoint(1, 3, float("nan"), 1.5, 2.5, float("inf"), 0.5)
    port.write_message(buf, port.progress("j", 2, point))
    buf.seek(0)
    message = next_message(buf)
    assert message.get("loss") == {"total": None, "content": 1.5, "style": 2.5, "tv": None}
    back = ProgressPoint.from_json(message.fields)
    assert (back.iteration, back.evaluations, back.content_loss, back.style_loss, back.elapsed_s) == (
        1,
        3,
        1.5,
        2.5,
        0.5,
    )
    assert math.isnan(back.total_loss) and math.isnan(back.tv_loss)
    assert message.get("iterations") == 2 and message.job == "j"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\xff\xfe not utf-8", "not UTF-8 JSON"),
        (b"{not json", "not UTF-8 JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"type": "explode"}', "unknown message type"),
    ],
)
def test_malformed_headers_are_errors_that_keep_the_stream_in_sync(payload, message):
    stream = frames(payload, json.dumps({"type": "ping", "n": 1}).encode())
    with pytest.raises(port.ProtocolError, match=message) as info:
        port.read_message(stream)
    assert not info.value.fatal
    assert next_message(stream).type == "ping"


def test_an_unknown_attachment_role_is_refused_after_reading_its_frame():
    header = json.dumps({"type": "paint", "job": "j", "attachments": ["virus"]}).encode()
    stream = frames(header, b"x", b'{"type":"ping"}')
    with pytest.raises(port.ProtocolError, match="unknown attachment role") as info:
        port.read_message(stream)
    assert info.value.job == "j"
    assert next_message(stream).type == "ping"


def test_an_oversized_frame_is_skipped(monkeypatch):
    monkeypatch.setattr(port, "MAX_FRAME_BYTES", 16)
    stream = io.BytesIO((40).to_bytes(4, "big") + b"x" * 40 + (15).to_bytes(4, "big") + b'{"type":"ping"}')
    with pytest.raises(port.ProtocolError, match="exceeds") as info:
        port.read_message(stream)
    assert not info.value.fatal
    assert next_message(stream).type == "ping"


@pytest.mark.parametrize("raw", [b"\x00\x00", b'\x00\x00\x00\x10{"type"', b"\x00\x00\x00\x2a"])
def test_a_stream_that_ends_inside_a_frame_is_fatal(raw):
    with pytest.raises(port.ProtocolError) as info:
        port.read_message(io.BytesIO(raw))
    assert info.value.fatal


def test_importing_the_port_does_not_import_tensorflow():
    code = "import sys, pycasso.port, pycasso; assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_paint_command_does_not_import_the_web_stack():
    code = (
        "import sys, deep_painting.cli, pycasso.cli, pycasso.engine;"
        "bad = {'fastapi', 'starlette', 'uvicorn', 'sqlalchemy'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize(
    "header",
    [
        {"type": "paint", "job": "j", "attachments": [["x"]]},  # a role that is not a string
        {"type": ["paint"], "job": "j"},  # a type that is not a string
    ],
)
def test_hostile_header_shapes_are_protocol_errors(header):
    roles = header.get("attachments", [])
    stream = frames(json.dumps(header).encode(), *([b"x"] * len(roles)), b'{"type":"ping"}')
    with pytest.raises(port.ProtocolError) as info:
        port.read_message(stream)
    assert not info.value.fatal and info.value.job == "j"
    assert next_message(stream).type == "ping"


def test_a_deeply_nested_header_is_a_protocol_error():
    stream = frames(b"[" * 100_000 + b"]" * 100_000, b'{"type":"ping"}')
    with pytest.raises(port.ProtocolError):
        port.read_message(stream)
    assert next_message(stream).type == "ping"


def test_an_oversized_attachment_fails_its_own_job_and_the_stream_stays_in_sync(monkeypatch):
    monkeypatch.setattr(port, "MAX_FRAME_BYTES", 90)  # the header (77 bytes) fits, the 100-byte style does not
    header = json.dumps({"type": "paint", "job": "big", "attachments": ["content", "style", "style"]}).encode()
    oversized = (100).to_bytes(4, "big") + b"x" * 100  # written by hand: write_frame refuses it
    head, tail = frames(header, b"c"), frames(b"t", b'{"type":"ping"}')
    stream = io.BytesIO(head.getvalue() + oversized + tail.getvalue())
    with pytest.raises(port.ProtocolError, match="exceeds") as info:
        port.read_message(stream)
    assert info.value.job == "big" and not info.value.fatal
    assert next_message(stream).type == "ping"


def test_too_many_attachments_are_refused_without_losing_sync():
    roles = ["style"] * (port.MAX_ATTACHMENTS + 1)
    header = json.dumps({"type": "paint", "job": "many", "attachments": roles}).encode()
    stream = frames(header, *([b"s"] * len(roles)), b'{"type":"ping"}')
    with pytest.raises(port.ProtocolError, match="at most") as info:
        port.read_message(stream)
    assert info.value.job == "many" and not info.value.fatal
    assert next_message(stream).type == "ping"
