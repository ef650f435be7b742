"""The Balena app: the compose file valid under the Compose specification's own JSON schema and
within Balena's supported subset, one Dockerfile for every architecture, and fleet defaults that
the device's own configuration accepts.

The schema is ``compose-spec.json`` of the compose-spec project (Apache-2.0), as vendored with
its licence by ``check-jsonschema`` (``check_jsonschema/builtin_schemas/vendor/``; a test
dependency), so it is read from that package rather than copied here.

Balena's supervisor implements compose file format 2.4 minus what its documentation leaves out
("docker-compose.yml fields", docs.balena.io/reference/supervisor/docker-compose): the lists
below are that page's supported fields, with the restrictions it states; anything else is
refused (or silently ignored, which is worse) when the release is built or applied.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import re
import typing
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from device import config as configuration

ROOT = Path(__file__).resolve().parents[2]

TOP_LEVEL = {"version", "services", "volumes", "networks"}  # no configs, secrets, x-: version 3 or swarm
SERVICE_FIELDS = {
    "build", "cap_add", "cap_drop", "cgroup_parent", "command", "cpu_shares", "cpu_quota", "cpuset",
    "devices", "depends_on", "dns", "dns_opt", "dns_search", "domainname", "entrypoint", "environment",
    "expose", "extra_hosts", "group_add", "healthcheck", "hostname", "image", "ipc", "labels",
    "mac_address", "mem_limit", "mem_reservation", "network_mode", "networks", "oom_kill_disable",
    "oom_score_adj", "pid", "pids_limit", "ports", "privileged", "read_only", "restart",
    "security_opt", "shm_size", "stop_grace_period", "stop_signal", "sysctls", "tmpfs", "ulimits",
    "user", "userns_mode", "volumes", "working_dir",
}
BUILD_FIELDS = {"context", "dockerfile", "args", "cache_from", "extra_hosts", "labels", "shm_size", "target"}
# Refused by us, though Balena takes them: a container that can reach every device and the host's
# kernel settings makes an RS485 adapter (`devices:`) pointless to list; host networking would
# bypass the ports the page and the broker publish.
REFUSED = {"privileged": "use devices: for the RS485 adapter", "network_mode": "bridge networking only"}
LABEL_PREFIX = "io.balena."
KNOWN_LABELS = {
    "io.balena.update.strategy", "io.balena.update.handover-timeout", "io.balena.features.supervisor-api",
    "io.balena.features.balena-api", "io.balena.features.dbus", "io.balena.features.kernel-modules",
    "io.balena.features.firmware", "io.balena.features.sysfs", "io.balena.features.procfs",
    "io.balena.features.journal-logs", "io.balena.features.balena-socket", "io.balena.features.gpu",
}
UPDATE_STRATEGIES = {"download-then-kill", "kill-then-download", "delete-then-download", "hand-over"}


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def balena_problems(doc: dict[str, Any]) -> list[str]:
    """Every way ``doc`` leaves Balena's compose subset (or our stricter list), one line each."""
    problems = [f"{key}: not supported by Balena" for key in sorted(set(doc) - TOP_LEVEL)]
    if not str(doc.get("version", "")).startswith("2"):
        problems.append(f"version: {doc.get('version')!r}; Balena supports format 2.x (2.4)")
    named = set(doc.get("volumes") or {})
    for name, service in doc["services"].items():
        for key in sorted(set(service) - SERVICE_FIELDS):
            problems.append(f"{name}.{key}: not supported by Balena")
        for key, reason in REFUSED.items():
            if service.get(key):
                problems.append(f"{name}.{key}: refused: {reason}")
        build = service.get("build")
        if isinstance(build, dict):
            problems += [f"{name}.build.{k}: not supported by Balena" for k in sorted(set(build) - BUILD_FIELDS)]
            build = build.get("context", ".")
        if build is not None and (re.match(r"^[a-z]+://|^git@", str(build)) or str(build).startswith("/")
                                  or ".." in Path(str(build)).parts):
            problems.append(f"{name}.build: {build!r}; must be a folder of the project")
        for volume in service.get("volumes", []):
            if not isinstance(volume, str):
                problems.append(f"{name}.volumes: {volume!r}; only the short syntax")
            elif volume.split(":", 1)[0] not in named:
                problems.append(f"{name}.volumes: {volume!r}; bind mounts are refused, named volumes only")
        depends = service.get("depends_on", [])
        if not isinstance(depends, list):
            problems.append(f"{name}.depends_on: only the list form")
        for label, value in (service.get("labels") or {}).items():
            if label.startswith(LABEL_PREFIX) and label not in KNOWN_LABELS:
                problems.append(f"{name}.labels: unknown Balena label {label}")
            if label == "io.balena.update.strategy" and value not in UPDATE_STRATEGIES:
                problems.append(f"{name}.labels: update strategy {value!r}")
        if "${" in yaml.safe_dump(service):
            problems.append(f"{name}: variable interpolation; Balena does not interpolate")
    return problems


def compose_spec_errors(doc: dict[str, Any]) -> list[str]:
    vendored = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(vendored.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(doc)]


def test_compose_file_follows_the_compose_specification() -> None:
    assert compose_spec_errors(compose()) == []
    broken = compose()
    broken["services"]["app"]["restart_policy"] = "always"
    broken["services"]["bridge"]["stop_grace_period"] = {"seconds": 30}
    errors = compose_spec_errors(broken)
    assert any(e.startswith("services.app:") and "'restart_policy' was unexpected" in e for e in errors), errors
    assert any(e.startswith("services.bridge.stop_grace_period:") for e in errors), errors


def test_compose_file_stays_within_balenas_subset() -> None:
    assert balena_problems(compose()) == []


def test_the_subset_check_finds_what_balena_refuses() -> None:
    doc = compose()
    doc["secrets"] = {}
    doc["services"]["bridge"] |= {"privileged": True, "deploy": {}, "volumes": ["/dev:/dev"],
                                  "depends_on": {"mqtt": {"condition": "service_healthy"}},
                                  "labels": {"io.balena.update.strategy": "rolling"}}
    doc["services"]["app"]["build"] = {"context": "https://example.com/x.git", "network": "host"}
    assert balena_problems(doc) == [
        "secrets: not supported by Balena",
        "bridge.deploy: not supported by Balena",
        "bridge.privileged: refused: use devices: for the RS485 adapter",
        "bridge.volumes: '/dev:/dev'; bind mounts are refused, named volumes only",
        "bridge.depends_on: only the list form",
        "bridge.labels: update strategy 'rolling'",
        "app.build.network: not supported by Balena",
        "app.build: 'https://example.com/x.git'; must be a folder of the project",
    ]


def test_services_run_as_a_fleet_needs_them() -> None:
    services = compose()["services"]
    assert services["bridge"]["devices"] == ["/dev/ttyUSB0:/dev/ttyUSB0"]
    assert services["app"]["labels"]["io.balena.features.supervisor-api"] == "1"
    assert all("healthcheck" in services[name] for name in ("mqtt", "bridge", "app"))
    assert all("io.balena.update.strategy" in services[name]["labels"] for name in ("bridge", "app"))
    assert services["bridge"]["labels"]["io.balena.update.strategy"] != "hand-over"  # one serial line owner


def test_one_dockerfile_builds_every_architecture() -> None:
    steps = "\n".join(line for line in (ROOT / "Dockerfile").read_text().splitlines()
                      if not line.lstrip().startswith("#"))
    bases = re.findall(r"^FROM\s+(\S+)", steps, re.M)
    assert bases and all(base.startswith("python:3.11-slim-") for base in bases)  # multi-arch manifests
    assert not re.search(r"--platform|aarch64|arm64|amd64|x86_64|armv7", steps)


def test_fleet_defaults_are_valid_device_settings_and_not_secrets() -> None:
    data = yaml.safe_load((ROOT / "balena.yml").read_text())["data"]
    variables = {k: str(v) for item in data["applicationEnvironmentVariables"] for k, v in item.items()}
    assert variables and all(name.startswith("NATTERY_") for name in variables)
    configuration.load([configuration.DEFAULT_FILE], environ=variables)  # raises with the device's message
    secrets = {
        f"NATTERY_{section}_{f.name}".upper()
        for section, kind in typing.get_type_hints(configuration.Config).items()
        for f in dataclasses.fields(kind)
        if f.metadata.get("secret")
    }
    assert secrets and not secrets & set(variables)
    text = (ROOT / "balena.yml").read_text()
    assert [name for name in sorted(secrets) if name not in text] == []  # each secret is documented
