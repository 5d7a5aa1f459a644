"""Split deployment for real: Gallery on one "host", Studio on another, one network link between them.

Each host is a Linux network namespace; a veth pair with a /30 picked here is the only path between
them, and the test process (in the root namespace) can reach neither. Studio and Gallery run with
exactly the `CMD` of docker/studio.Dockerfile and docker/gallery.Dockerfile (the venv's `deep-painting`
in place of the image's), configured only through the environment, and are waited for with the
health checks of docker-compose.yml run inside their namespaces. Every HTTP call the tests make runs
in the gallery namespace (tests/deploy/netns_client.py), as a browser on the Gallery host would.

Proved: a painting goes to done across the link; Studio refuses a wrong or missing token and a Gallery
with a wrong token waits instead of failing; a Studio host that crashes mid-painting and comes back
finishes the painting. Needs root and iproute2's `ip`; skips (fails under CI) without them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
import yaml

from painting.catalog import Catalog

from support import descendants

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CLIENT = Path(__file__).with_name("netns_client.py")
DEEP_PAINTING = str(Path(sys.executable).with_name("deep-painting"))
STUDIO_PORT, GALLERY_PORT = 8100, 8000
READY_TIMEOUT_S = 120


# --- what the deployment files say ------------------------------------------------------------


def dockerfile_cmd(name: str) -> list[str]:
    """The JSON `CMD` of docker/<name>.Dockerfile, with the venv's deep-painting script in front."""
    lines = (REPO / "docker" / f"{name}.Dockerfile").read_text().splitlines()
    cmds = [json.loads(line.removeprefix("CMD ")) for line in lines if line.startswith("CMD [")]
    assert len(cmds) == 1, f"expected one top-level JSON CMD in {name}.Dockerfile, found {cmds}"
    assert cmds[0][0] == "deep-painting", cmds[0]
    return [DEEP_PAINTING, *cmds[0][1:]]


def compose_health_code(service: str) -> str:
    """The Python code of docker-compose.yml's health check for `service` (["CMD", "python", "-c", CODE])."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    test = compose["services"][service]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"] and len(test) == 4, test
    return test[3]


# --- processes --------------------------------------------------------------------------------


def start_time(pid: int) -> int | None:
    """The kernel's start time of a live (non-zombie) process, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


@dataclass
class Tracker:
    """Every process the module started, and every descendant seen, as (pid, start time)."""

    procs: list[subprocess.Popen] = field(default_factory=list)
    seen: set[tuple[int, int]] = field(default_factory=set)

    def note_descendants(self, proc: subprocess.Popen) -> list[tuple[int, int]]:
        noted = [(pid, t) for pid in descendants(proc.pid) if (t := start_time(pid)) is not None]
        self.seen.update(noted)
        return noted

    def alive(self) -> list[tuple[int, int]]:
        """The noted descendants still running (a zombie counts as gone)."""
        return sorted(p for p in self.seen if start_time(p[0]) == p[1])

    def all_gone(self) -> bool:
        return all(proc.poll() is not None for proc in self.procs) and not self.alive()

    def kill_all(self) -> None:
        for proc in self.procs:
            self.note_descendants(proc)
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pid, _ in self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def wait_until(condition: Callable[[], Any], timeout_s: float, what: Callable[[], str] | str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what if isinstance(what, str) else what()} within {timeout_s} s")
        time.sleep(0.2)


# --- the two hosts ----------------------------------------------------------------------------


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def pick_subnet() -> ipaddress.IPv4Network:
    """A /30 in 10.x that overlaps nothing the root namespace has."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], check=True, capture_output=True, text=True).stdout
    taken = [ipaddress.ip_interface(line.split()[3]).network for line in out.splitlines()]  # "1: lo inet ADDR/N"
    for _ in range(100):
        subnet = ipaddress.IPv4Network(f"10.{random.randint(100, 250)}.{random.randint(0, 255)}.0/30")
        if not any(subnet.overlaps(t) for t in taken):
            return subnet
    raise AssertionError(f"no free 10.x /30 beside {taken}")


@dataclass
class Service:
    """One service process in a namespace: its command line, environment, log, health check."""

    name: str
    netns: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    health_code: str
    tracker: Tracker
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, *self.argv],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.log.parent,
            )
        self.tracker.procs.append(self.proc)

    def tail(self) -> str:
        return f"--- {self.name} log ({self.log}) ---\n" + self.log.read_text(errors="replace")[-3000:]

    def healthy(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, f"{self.name} exited early\n{self.tail()}"
        check = subprocess.run(
            ["ip", "netns", "exec", self.netns, sys.executable, "-c", self.health_code], capture_output=True, timeout=15
        )
        return check.returncode == 0

    def wait_healthy(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        wait_until(self.healthy, timeout_s, lambda: f"{self.name} healthy\n{self.tail()}")

    def stop(self) -> None:
        assert self.proc is not None
        self.tracker.note_descendants(self.proc)
        self.proc.terminate()
        self.proc.wait(30)


@dataclass
class Deployment:
    studio_ns: str
    gallery_ns: str
    studio_addr: str
    gallery_addr: str
    token: str
    tmp: Path
    tracker: Tracker
    studio: Service | None = None
    gallery: Service | None = None

    @property
    def studio_url(self) -> str:
        return f"http://{self.studio_addr}:{STUDIO_PORT}"

    def service_env(self, **values: str) -> dict[str, str]:
        """The test's environment without any STUDIO_/GALLERY_ setting of its own, plus `values`."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("STUDIO_", "GALLERY_"))}
        return {**base, **values}

    def studio_service(self) -> Service:
        env = self.service_env(
            STUDIO_TOKEN=self.token,
            STUDIO_DATA_DIR=str(self.tmp / "studio-data"),
            STUDIO_KEEPALIVE_S="1",
            TF_CPP_MIN_LOG_LEVEL="2",
        )
        return Service(
            "studio",
            self.studio_ns,
            dockerfile_cmd("studio"),
            env,
            self.tmp / "studio.log",
            compose_health_code("studio"),
            self.tracker,
        )

    def gallery_service(
        self,
        name: str = "gallery",
        *,
        token: str | None = None,
        extra_args: tuple[str, ...] = (),
        port: int = GALLERY_PORT,
    ) -> Service:
        env = self.service_env(
            GALLERY_STUDIO_URL=self.studio_url,
            GALLERY_STUDIO_TOKEN=token or self.token,
            GALLERY_DATA_DIR=str(self.tmp / f"{name}-data"),
            GALLERY_RETRY_INITIAL_S="0.2",
            GALLERY_RETRY_MAX_S="1",
            GALLERY_STUDIO_STREAM_TIMEOUT_S="10",
        )
        health = compose_health_code("gallery")
        assert f"127.0.0.1:{GALLERY_PORT}/" in health, health
        health = health.replace(f"127.0.0.1:{GALLERY_PORT}/", f"127.0.0.1:{port}/")
        return Service(
            name,
            self.gallery_ns,
            [*dockerfile_cmd("gallery"), *extra_args],
            env,
            self.tmp / f"{name}.log",
            health,
            self.tracker,
        )

    def call(self, spec: dict[str, Any], timeout_s: float = 60) -> dict[str, Any]:
        """Run one netns_client action in the gallery namespace; its JSON answer."""
        done = subprocess.run(
            ["ip", "netns", "exec", self.gallery_ns, sys.executable, str(CLIENT), json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=timeout_s + 30,
        )
        assert done.returncode == 0, f"netns_client {spec.get('action')} failed: {done.stderr[-3000:]}"
        return json.loads(done.stdout)

    def tails(self) -> str:
        return "\n".join(s.tail() for s in (self.studio, self.gallery) if s is not None)


def cannot_run(reason: str) -> NoReturn:
    """Skip loudly on a developer's machine; under CI (where root and iproute2 are set up), fail."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[Deployment]:
    if os.geteuid() != 0:
        cannot_run(f"SPLIT-DEPLOYMENT TEST CANNOT RUN: needs root for `ip netns add` (euid is {os.geteuid()})")
    if shutil.which("ip") is None:
        cannot_run("SPLIT-DEPLOYMENT TEST CANNOT RUN: iproute2's `ip` command is not on PATH")
    pid = os.getpid()
    subnet = pick_subnet()
    studio_addr, gallery_addr = (str(h) for h in subnet.hosts())
    tracker = Tracker()
    deploy = Deployment(
        f"dp-studio-{pid}",
        f"dp-gallery-{pid}",
        studio_addr,
        gallery_addr,
        secrets.token_hex(16),
        tmp_path_factory.mktemp("split"),
        tracker,
    )
    made: list[str] = []
    try:
        try:
            for ns in (deploy.studio_ns, deploy.gallery_ns):
                ip("netns", "add", ns)
                made.append(ns)
            ip(
                "-n",
                deploy.studio_ns,
                "link",
                "add",
                "veth-studio",
                "type",
                "veth",
                "peer",
                "name",
                "veth-gallery",
                "netns",
                deploy.gallery_ns,
            )
            for ns, dev, addr in [
                (deploy.studio_ns, "veth-studio", studio_addr),
                (deploy.gallery_ns, "veth-gallery", gallery_addr),
            ]:
                ip("-n", ns, "addr", "add", f"{addr}/{subnet.prefixlen}", "dev", dev)
                ip("-n", ns, "link", "set", dev, "up")
                ip("-n", ns, "link", "set", "lo", "up")
        except subprocess.CalledProcessError as exc:
            message = (
                f"SPLIT-DEPLOYMENT TEST CANNOT SET UP ITS NETWORK: `{' '.join(exc.cmd)}` failed as root: "
                f"{exc.stderr.strip()}"
            )
            cannot_run(message)

        deploy.studio = deploy.studio_service()
        deploy.studio.start()
        deploy.gallery = deploy.gallery_service()
        deploy.gallery.start()
        deploy.studio.wait_healthy()
        deploy.gallery.wait_healthy(30)
        yield deploy
    finally:
        try:
            tracker.kill_all()
        finally:
            for ns in made:  # also removes the veth pair
                subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        wait_until(tracker.all_gone, 10, lambda: f"every started process gone: alive {tracker.alive()}")


# --- the calls the tests make (all from the gallery namespace) --------------------------------


def post_painting(deploy: Deployment, params: dict[str, Any], port: int = GALLERY_PORT) -> dict[str, Any]:
    answer = deploy.call(
        {
            "action": "request",
            "method": "POST",
            "url": f"http://127.0.0.1:{port}/api/paintings",
            "files": {"content": [[64, 48]], "style": [[48, 48]]},
            "data": {"params": json.dumps(params)},
        }
    )
    assert answer["status"] == 201, answer
    return answer["json"]


def wait_painting(
    deploy: Deployment,
    painting_id: str,
    statuses: set[str],
    timeout_s: float,
    *,
    min_iteration: int = 0,
    port: int = GALLERY_PORT,
) -> dict[str, Any]:
    answer = deploy.call(
        {
            "action": "wait",
            "url": f"http://127.0.0.1:{port}/api/paintings/{painting_id}",
            "statuses": sorted(statuses),
            "min_iteration": min_iteration,
            "timeout_s": timeout_s,
        },
        timeout_s,
    )
    assert answer["matched"], f"painting not in {statuses} within {timeout_s} s: {answer['body']}\n{deploy.tails()}"
    return answer["body"]


def gallery_image(deploy: Deployment, image_id: str) -> dict[str, Any]:
    return deploy.call(
        {"action": "request", "method": "GET", "url": f"http://127.0.0.1:{GALLERY_PORT}/api/images/{image_id}"}
    )


def studio_job_id(deploy: Deployment, painting_id: str) -> str:
    """Gallery's record of the painting's Studio job (its API does not show it: read its catalog file)."""
    with Catalog.open(None, deploy.tmp / "gallery-data", scope="gallery", migrate=False) as catalog:
        remote_id = catalog.get(painting_id).remote_id
    assert remote_id, f"Gallery stored no Studio job id for {painting_id}"
    return remote_id


def studio_job(deploy: Deployment, painting_id: str) -> dict[str, Any]:
    """Studio's own view of the painting's job, asked at Studio's address from the gallery namespace."""
    job_id = studio_job_id(deploy, painting_id)
    answer = deploy.call(
        {
            "action": "request",
            "method": "GET",
            "url": f"{deploy.studio_url}/v1/jobs/{job_id}",
            "headers": {"Authorization": f"Bearer {deploy.token}"},
        }
    )
    assert answer["status"] == 200, answer
    return answer["json"]


def studio_counts(deploy: Deployment) -> tuple[int, int]:
    """(jobs, image files) Studio has stored."""
    data = deploy.tmp / "studio-data"
    with Catalog.open(None, data, scope="studio", migrate=False) as catalog:
        jobs = catalog.count()
    return jobs, sum(1 for p in (data / "images").rglob("*") if p.is_file())


# --- the tests --------------------------------------------------------------------------------


def studio_live_from_root(url: str) -> tuple[bool, str]:
    """Whether Studio's own /health/live answer reaches the test process (root namespace), and what came."""
    try:
        with httpx.Client(trust_env=False, timeout=3) as client:
            response = client.get(url)
    except httpx.HTTPError as exc:
        return False, repr(exc)
    is_studio = response.status_code == 200 and response.text.replace(" ", "") == '{"status":"live"}'
    return is_studio, f"{response.status_code} {response.headers.get('server')} {response.text[:200]!r}"


def test_the_link_is_the_only_path_to_studio(deployment: Deployment) -> None:
    url = f"{deployment.studio_url}/health/live"
    start = time.monotonic()
    # No route from the root namespace. (A sandbox's gateway may still accept the connect: it is not Studio.)
    reached, what = studio_live_from_root(url)
    assert not reached and time.monotonic() - start < 4, f"Studio answered the root namespace: {what}"

    from_gallery = deployment.call({"action": "request", "method": "GET", "url": url})
    assert (from_gallery["status"], from_gallery["json"]) == (200, {"status": "live"}), from_gallery


def test_painting_goes_to_done_across_the_link(deployment: Deployment) -> None:
    painting = post_painting(deployment, {"size": 40, "iterations": 3})
    assert painting["status"] in {"queued", "running"}, painting

    done = wait_painting(deployment, painting["id"], {"done", "failed", "cancelled"}, 90)
    assert done["status"] == "done", f"{done}\n{deployment.tails()}"
    assert [p["iteration"] for p in done["progress"]][-1] == 3, done["progress"]

    image = gallery_image(deployment, done["result_image"])
    # `size` is the painting's height; the width follows the 64x48 photo: round(64 * 40 / 48) = 53.
    assert (image["status"], image["content_type"], image["image_size"]) == (200, "image/png", [53, 40, "PNG"])

    job = studio_job(deployment, painting["id"])
    assert (job["state"], job["iteration"], job["attempts"]) == ("done", 3, 1), job
    assert job["result_image"] == done["result_image"]  # same sha256: the same bytes on both hosts


def test_a_wrong_token_is_refused(deployment: Deployment) -> None:
    before = studio_counts(deployment)
    for headers in [{"Authorization": "Bearer not-the-token"}, {}]:
        get = deployment.call(
            {
                "action": "request",
                "method": "GET",
                "headers": headers,
                "url": f"{deployment.studio_url}/v1/jobs/{'0' * 32}",
            }
        )
        post = deployment.call(
            {
                "action": "request",
                "method": "POST",
                "headers": headers,
                "url": f"{deployment.studio_url}/v1/jobs",
                "files": {"content": [[64, 48]], "style": [[48, 48]]},
                "data": {"params": json.dumps({"size": 40, "iterations": 1})},
            }
        )
        assert (get["status"], post["status"]) == (401, 401), (headers, get, post)
    assert studio_counts(deployment) == before

    # A second Gallery beside the first: the Dockerfile's CMD, then --port 8001 (the later --port wins).
    wrong = deployment.gallery_service(
        "gallery-wrong-token", token="not-the-token", extra_args=("--port", "8001"), port=8001
    )
    wrong.start()
    try:
        wrong.wait_healthy(30)
        painting = post_painting(deployment, {"size": 40, "iterations": 1}, port=8001)
        waiting = wait_painting(deployment, painting["id"], {"waiting_for_studio", "failed", "done"}, 20, port=8001)
        assert waiting["status"] == "waiting_for_studio", f"{waiting}\n{wrong.tail()}"
        assert "GALLERY_STUDIO_TOKEN" in waiting["error"], waiting["error"]

        # It keeps retrying (backoff at most 1 s) and keeps waiting: a token fault is the operator's to fix.
        retries_until = time.monotonic() + 4
        while time.monotonic() < retries_until:
            still = deployment.call(
                {"action": "request", "method": "GET", "url": f"http://127.0.0.1:8001/api/paintings/{painting['id']}"}
            )
            assert still["json"]["status"] == "waiting_for_studio", f"{still}\n{wrong.tail()}"
            time.sleep(0.5)
        assert studio_counts(deployment) == before
    finally:
        wrong.stop()


def test_studio_host_crash_and_return_mid_painting(deployment: Deployment) -> None:
    studio = deployment.studio
    assert studio is not None and studio.proc is not None
    iterations = 40
    painting = post_painting(deployment, {"size": 64, "iterations": iterations, "preview_every": 5})
    running = wait_painting(deployment, painting["id"], {"running"}, 60, min_iteration=5)
    assert running["iteration"] < iterations, running

    workers = deployment.tracker.note_descendants(studio.proc)
    assert workers, f"Studio has no worker process\n{studio.tail()}"
    studio.proc.send_signal(signal.SIGKILL)  # the Studio host crashes
    studio.proc.wait(10)
    wait_until(
        lambda: all(start_time(pid) != t for pid, t in workers),
        15,
        lambda: f"workers {workers} exited on their own after Studio died\n{studio.tail()}",
    )

    waiting = wait_painting(deployment, painting["id"], {"waiting_for_studio", "done", "failed"}, 20)
    assert waiting["status"] == "waiting_for_studio", f"{waiting}\n{deployment.tails()}"
    assert waiting["iteration"] < iterations, waiting

    studio.start()  # the host comes back: same command line, data dir and namespace
    studio.wait_healthy()
    done = wait_painting(deployment, painting["id"], {"done", "failed", "cancelled"}, 120)
    assert done["status"] == "done", f"{done}\n{deployment.tails()}"
    assert done["iteration"] == iterations and done["progress"][-1]["iteration"] == iterations, done["progress"]
    image = gallery_image(deployment, done["result_image"])
    assert (image["status"], image["content_type"], image["image_size"]) == (200, "image/png", [85, 64, "PNG"])
    job = studio_job(deployment, painting["id"])  # run twice: before the crash, then resumed after the return
    assert (job["state"], job["iteration"], job["attempts"]) == ("done", iterations, 2), job
    assert job["result_image"] == done["result_image"]
