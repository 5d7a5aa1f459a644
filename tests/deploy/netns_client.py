"""One HTTP action from inside a network namespace, for tests/deploy/test_split.py.

    ip netns exec NS python tests/deploy/netns_client.py '{"action": "request", "method": "GET", "url": "..."}'

The test process lives in the root namespace and cannot reach the services; it runs this script in
the gallery namespace instead. Argument: one JSON object; output: one JSON object on stdout.

    request   {method, url, headers?, data?, files?: {field: [[width, height], ...]}}
              -> {status, json | null, text, content_type, image_size | null}; `files` become generated PNGs
    wait      {url, statuses, min_iteration?, timeout_s, headers?}: poll GET url until its JSON `status`
              is one of `statuses` (and its `iteration` >= min_iteration)
              -> {matched, body, waited_s}; body is the last JSON seen (or the last error)
"""

from __future__ import annotations

import io
import json
import sys
import time
from typing import Any

import httpx
from PIL import Image


def png(width: int, height: int) -> bytes:
    """A small horizontal gradient, so the painting has something to work on."""
    image = Image.new("RGB", (width, height))
    image.putdata(
        [
            (x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), 120)
            for y in range(height)
            for x in range(width)
        ]
    )
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def describe(response: httpx.Response) -> dict[str, Any]:
    content_type = response.headers.get("content-type", "")
    result: dict[str, Any] = {
        "status": response.status_code,
        "content_type": content_type,
        "json": None,
        "text": "",
        "image_size": None,
    }
    if content_type.startswith("application/json"):
        result["json"] = response.json()
    elif content_type.startswith("image/"):
        with Image.open(io.BytesIO(response.content)) as image:
            result["image_size"] = [*image.size, image.format]
    else:
        result["text"] = response.text[:2000]
    return result


def request(client: httpx.Client, spec: dict[str, Any]) -> dict[str, Any]:
    files = [
        (field, (f"{field}-{i}.png", png(w, h), "image/png"))
        for field, sizes in spec.get("files", {}).items()
        for i, (w, h) in enumerate(sizes)
    ]
    response = client.request(
        spec["method"], spec["url"], headers=spec.get("headers"), data=spec.get("data"), files=files or None
    )
    return describe(response)


def wait(client: httpx.Client, spec: dict[str, Any]) -> dict[str, Any]:
    start = time.monotonic()
    body: Any = None
    while True:
        try:
            body = client.get(spec["url"], headers=spec.get("headers")).json()
            if body.get("status") in spec["statuses"] and body.get("iteration", 0) >= spec.get("min_iteration", 0):
                return {"matched": True, "body": body, "waited_s": time.monotonic() - start}
        except httpx.HTTPError as exc:
            body = {"transport_error": repr(exc)}
        if time.monotonic() - start > spec["timeout_s"]:
            return {"matched": False, "body": body, "waited_s": time.monotonic() - start}
        time.sleep(0.1)


def main() -> None:
    spec = json.loads(sys.argv[1])
    with httpx.Client(timeout=30, trust_env=False) as client:
        action = {"request": request, "wait": wait}[spec["action"]]
        print(json.dumps(action(client, spec)))


if __name__ == "__main__":
    main()
