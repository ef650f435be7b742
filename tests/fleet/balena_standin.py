"""A local HTTP server that answers like Balena's API (v7, OData) for the calls ``nattery-fleet``
makes through ``balena-sdk``, with device records shaped like the API's own answers.

It keeps what is written (variables, tags, names, pins, blinks, restarts) so tests check the
effect, and records every request so a test can say that nothing was sent.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

FLEET = {"id": 2041876, "slug": "acme/nattery", "app_name": "nattery", "uuid": "0d5c3b0e2a2f4d0c9f3e5a1b7c6d8e9f"}
RELEASE = {"id": 3120057, "commit": "5f8b0e8d6a4c41c3b7e2d9f0a1c2b3d4", "status": "success",
           "raw_version": "0.1.0", "belongs_to__application": {"__id": FLEET["id"]}}
SERVICES = {"mqtt": 2894511, "bridge": 2894512, "app": 2894513}  # image ids of RELEASE


def balena_device(id_: int, uuid: str, name: str, *, online: bool) -> dict[str, Any]:
    """A device as ``GET /v7/device`` returns it (the fields nattery-fleet reads and their neighbours)."""
    return {
        "id": id_, "uuid": uuid, "device_name": name, "is_online": online,
        "api_heartbeat_state": "online" if online else "offline", "status": "Idle",
        "belongs_to__application": {"__id": FLEET["id"]}, "is_of__device_type": {"__id": 58},
        "os_version": "balenaOS 6.0.13", "os_variant": "prod", "supervisor_version": "16.7.5",
        "last_connectivity_event": "2026-11-29T21:40:12.511Z", "ip_address": "192.168.178.41",
        "is_pinned_on__release": None, "should_be_running__release": {"__id": RELEASE["id"]},
        "created_at": "2026-10-02T08:14:55.120Z", "note": None,
    }


@dataclass
class BalenaStandIn:
    devices: list[dict[str, Any]]
    tags: list[dict[str, Any]] = field(default_factory=list)
    device_vars: dict[tuple[int, str], str] = field(default_factory=dict)
    fleet_vars: dict[str, str] = field(default_factory=dict)
    fleet_release: int | None = None
    blinks: list[str] = field(default_factory=list)
    restarts: list[tuple[int, int]] = field(default_factory=list)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    refuse_variables: bool = False  # device variables answer 500, as the API does when it fails
    url: str = ""

    @property
    def writes(self) -> list[tuple[str, str, Any]]:
        return [r for r in self.requests if r[0] != "GET"]

    def device(self, uuid: str) -> dict[str, Any] | None:
        return next((d for d in self.devices if d["uuid"] == uuid), None)

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        self.requests.append((method, path, body))
        if method == "GET" and path.startswith("/v7/application?"):
            return 200, {"d": [FLEET] if f"'{FLEET['slug']}'" in path else []}
        if method == "GET" and (m := re.match(r"/v7/device\(uuid='(\w+)'\)", path)):
            found = self.device(m.group(1))
            return 200, {"d": [] if found is None else [self._expanded(found, path)]}
        if method == "GET" and path.startswith("/v7/device?"):
            if m := re.search(r"uuid eq '(\w+)'", path):
                found = self.device(m.group(1))
                return 200, {"d": [] if found is None else [found]}
            return 200, {"d": sorted(self.devices, key=lambda d: d["device_name"])}
        if method == "GET" and path.startswith("/v7/device_tag?"):
            return 200, {"d": self.tags}
        if method == "GET" and path.startswith("/v7/release?"):
            return 200, {"d": [{"id": RELEASE["id"]}] if f"'{RELEASE['commit']}'" in path else []}
        if method == "POST" and path == "/v7/device_environment_variable" and self.refuse_variables:
            return 500, {"error": "Internal Server Error"}
        if method == "POST" and path == "/v7/device_environment_variable":
            self.device_vars[(body["device"], body["name"])] = body["value"]
            return 201, {"id": len(self.device_vars), **body}
        if method == "POST" and path == "/v7/application_environment_variable":
            self.fleet_vars[body["name"]] = body["value"]
            return 201, {"id": len(self.fleet_vars), **body}
        if method == "PATCH" and (m := re.match(r"/v7/device\((\d+)\)$", path)):
            next(d for d in self.devices if d["id"] == int(m.group(1))).update(body)
            return 200, "OK"
        if method == "PATCH" and (m := re.match(r"/v7/device\?\$filter=id eq (\d+)$", path)):
            next(d for d in self.devices if d["id"] == int(m.group(1)))["is_pinned_on__release"] = {
                "__id": body["is_pinned_on__release"]}
            return 200, "OK"
        if method == "PATCH" and path == f"/v7/application({FLEET['id']})":
            self.fleet_release = body["should_be_running__release"]
            return 200, "OK"
        if method == "POST" and path == "/supervisor/v1/blink":
            self.blinks.append(body["uuid"])
            return 200, "OK"
        if method == "POST" and (m := re.match(r"/supervisor/v2/applications/(\d+)/restart-service$", path)):
            self.restarts.append((body["deviceId"], body["data"]["imageId"]))
            return 200, "OK"
        return 404, {"error": f"stand-in: no answer for {method} {path}"}

    def _expanded(self, device: dict[str, Any], path: str) -> dict[str, Any]:
        out = copy.deepcopy(device)
        if "$expand=belongs_to__application" in path:
            out["belongs_to__application"] = [{"id": FLEET["id"]}]
        if "$expand=image_install" in path:
            out["image_install"] = [
                {"id": 900 + i, "status": "Running", "download_progress": None,
                 "install_date": "2026-11-28T10:02:11.000Z",
                 "image": [{"id": image, "is_a_build_of__service": [{"id": 700 + i, "service_name": name}]}],
                 "is_provided_by__release": [{"id": RELEASE["id"], "commit": RELEASE["commit"],
                                              "raw_version": RELEASE["raw_version"]}]}
                for i, (name, image) in enumerate(SERVICES.items())
            ]
        return out


@contextmanager
def serving(standin: BalenaStandIn) -> Iterator[BalenaStandIn]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            status, payload = standin.answer(self.command, unquote(self.path), json.loads(raw) if raw else None)
            data = json.dumps(payload).encode() if not isinstance(payload, str) else payload.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if not isinstance(payload, str) else "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _reply

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # serve_forever looks for shutdown() between polls: at its default 0.5 s every test's
    # teardown waited about half a second for the stand-in to stop.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    standin.url = f"http://127.0.0.1:{server.server_port}/"
    try:
        yield standin
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
