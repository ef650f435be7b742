"""Fuzzing the web page's JSON API with hypothesis, against the real aiohttp app on 127.0.0.1.

The app runs in a thread of its own (its own event loop) with a real store file, a real settings
file, a real mosquitto and the stand-in bridge; the examples are sent over HTTP by a logged-in
installer (who may call everything). Every generated request is invalid by construction, and each
must be answered with a 4xx and a JSON ``error`` (400s also name the ``field``), leave the
settings and account files as they were, send no command to the bridge, and leave the app
answering. The example budget is fixed and the generation derandomised, so CI runs the same
examples in the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.cookiejar
import json
import math
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device.config import Config
from device.home.settings import EDITABLE
from tests.conftest import Broker
from tests.device.web.conftest import NEW_PASSWORDS, role_default
from tests.device.web.harness import WebStack, register_map, web_config, web_stack

BUDGET = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@dataclass
class LiveWeb:
    """The app served on 127.0.0.1 from its own thread, and a cookie-keeping client for it."""

    url: str
    stack: WebStack
    thread: threading.Thread
    opener: urllib.request.OpenerDirector = dataclasses.field(
        default_factory=lambda: urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())))
    csrf: str = ""

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str = "application/json") -> tuple[int, str, Any]:
        """(status, content type, decoded JSON body or the raw text)."""
        headers = {"X-CSRF-Token": self.csrf, "Content-Type": content_type}
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with self.opener.open(request, timeout=30) as response:
                status, kind, raw = response.status, response.headers.get_content_type(), response.read()
        except urllib.error.HTTPError as error:
            status, kind, raw = error.code, error.headers.get_content_type(), error.read()
        return status, kind, json.loads(raw) if kind == "application/json" else raw.decode(errors="replace")

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, _, data = self.request(method, path, None if body is None else json.dumps(body).encode())
        return status, data

    def login_installer(self) -> None:
        self.csrf = self.call("GET", "/api/v1/session")[1]["csrf"]
        status, _ = self.call("POST", "/api/v1/login", {"account": "installer", "password": role_default("installer")})
        assert status == 200
        self.csrf = self.call("GET", "/api/v1/session")[1]["csrf"]
        new = NEW_PASSWORDS["installer"]
        status, _ = self.call("POST", "/api/v1/password", {
            "old_password": role_default("installer"), "new_password": new, "repeat_password": new})
        assert status == 200


@contextlib.contextmanager
def live_web(cfg: Config) -> Iterator[LiveWeb]:
    started: dict[str, Any] = {}
    ready = threading.Event()

    async def serve() -> None:
        async with web_stack(cfg) as stack:
            runner = web.AppRunner(stack.app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            stop = asyncio.Event()
            started.update(stack=stack, port=runner.addresses[0][1], stop=stop, loop=asyncio.get_running_loop())
            ready.set()
            try:
                await stop.wait()
            finally:
                await runner.cleanup()

    def main() -> None:
        try:
            asyncio.run(serve())
        finally:
            ready.set()

    thread = threading.Thread(target=main, name="web-app", daemon=True)
    thread.start()
    assert ready.wait(60) and "port" in started, "the web app did not start"
    live = LiveWeb(f"http://127.0.0.1:{started['port']}", started["stack"], thread)
    try:
        yield live
    finally:
        started["loop"].call_soon_threadsafe(started["stop"].set)
        thread.join(30)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, mosquitto: Broker) -> Iterator[LiveWeb]:
    """One app and installer session for the module: every example is refused and must leave
    the app as it was (:func:`assert_refused` checks the session too), so the tests share it."""
    with live_web(web_config(tmp_path_factory.mktemp("fuzz-web"), mosquitto.port)) as live:
        live.login_installer()
        yield live


@dataclass(frozen=True)
class Untouched:
    """What a refused request must leave as it was."""

    settings: bytes | None
    accounts: bytes

    @classmethod
    def now(cls, live: LiveWeb) -> Untouched:
        data_dir = live.stack.cfg.device.data_dir
        settings_file = data_dir / "settings.json"
        return cls(settings_file.read_bytes() if settings_file.exists() else None,
                   (data_dir / "web-users.json").read_bytes())


def assert_refused(live: LiveWeb, before: Untouched, status: int, kind: str, body: Any,
                   fields: set[str] | None = None) -> None:
    assert 400 <= status < 500, (status, body)
    assert kind == "application/json" and isinstance(body, dict), body
    assert isinstance(body.get("error"), str) and body["error"], body
    if status == 400:
        assert isinstance(body.get("field"), str), body
        if fields is not None:  # the field, or a part of it (``value.0`` for a list's first item)
            assert any(body["field"] == f or body["field"].startswith(f + ".") for f in fields), body
    assert Untouched.now(live) == before
    assert live.stack.bridge.commands == []  # nothing reached the inverter
    assert live.thread.is_alive()
    status, session = live.call("GET", "/api/v1/session")
    assert (status, session["role"], session["must_change"]) == (200, "installer", False)


# --- strategies -------------------------------------------------------------------------------

JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                         st.floats(), st.text(max_size=12))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=8)
NOT_A_NUMBER: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, None, True, False, "12", "", [], {}]),
    st.text(max_size=8), st.lists(st.integers(), min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), min_size=1, max_size=2),
)


def field_meta(cfg: Config, section: str, key: str) -> dict[str, Any]:
    owner = getattr(cfg, section)
    return dict(next(f.metadata for f in dataclasses.fields(owner) if f.name == key))


def bad_setting(cfg: Config, section: str, key: str) -> st.SearchStrategy[Any]:
    """Values ``section.key`` never allows: wrong types, non-finite numbers, outside its bounds."""
    meta = field_meta(cfg, section, key)
    if meta["choices"] is not None:
        choices = {str(c) for c in meta["choices"]}
        return st.one_of(st.text(max_size=12), NOT_A_NUMBER, st.floats()).filter(
            lambda v: not isinstance(v, (str, int, float)) or isinstance(v, bool) or str(v) not in choices)
    below = st.floats(max_value=meta["min"], exclude_max=True) if meta["min"] is not None else st.nothing()
    above = st.floats(min_value=meta["max"], exclude_min=True) if meta["max"] is not None else st.nothing()
    return st.one_of(NOT_A_NUMBER.filter(lambda v: not isinstance(v, bool)), below, above,
                     st.integers(min_value=2**64, max_value=2**80), st.sampled_from([True, False]))


@st.composite
def bad_settings_change(draw: st.DrawFn, cfg: Config) -> tuple[dict[str, Any], str]:
    """One bad value in an otherwise plausible change, and the field the refusal must name."""
    section = draw(st.sampled_from(sorted(EDITABLE)))
    key = draw(st.sampled_from(EDITABLE[section]))
    change: dict[str, Any] = {section: {key: draw(bad_setting(cfg, section, key))}}
    return change, f"{section}.{key}"


# --- the properties ------------------------------------------------------------------------------

def test_bad_settings_changes_are_refused(app: LiveWeb) -> None:
    cfg = app.stack.cfg

    @BUDGET
    @given(bad_settings_change(cfg))
    def check(case: tuple[dict[str, Any], str]) -> None:
        change, field = case
        before = Untouched.now(app)
        status, kind, body = app.request("PATCH", "/api/v1/settings", json.dumps(change).encode())
        assert_refused(app, before, status, kind, body, {field})

    check()


def test_unknown_settings_and_shapes_are_refused(app: LiveWeb) -> None:
    sections = st.one_of(st.sampled_from(["inverter", "web", "device", "battery", "planner"]), st.text(max_size=8))

    @BUDGET
    @given(st.one_of(
        st.dictionaries(sections, st.dictionaries(st.text(max_size=10), JSON_VALUES, min_size=1, max_size=2),
                        min_size=1, max_size=2),
        st.dictionaries(st.text(max_size=8), JSON_SCALARS, min_size=1, max_size=3),
        JSON_VALUES.filter(lambda v: not isinstance(v, dict)),
    ).filter(lambda body: not _only_allowed(body)))
    def check(body: Any) -> None:
        before = Untouched.now(app)
        status, kind, data = app.request("PATCH", "/api/v1/settings", json.dumps(body).encode())
        assert_refused(app, before, status, kind, data)

    check()


def _only_allowed(body: Any) -> bool:
    """True when every key is an editable one (those bodies may be valid: the other test covers them)."""
    return isinstance(body, dict) and all(
        section in EDITABLE and isinstance(values, dict) and all(key in EDITABLE[section] for key in values)
        for section, values in body.items())


def test_bad_manual_overrides_are_refused(app: LiveWeb) -> None:
    limit = max(app.stack.cfg.inverter.max_charge_w, app.stack.cfg.inverter.max_discharge_w)
    bad_power = st.one_of(NOT_A_NUMBER, st.floats(max_value=1, exclude_max=True), st.floats(min_value=limit, exclude_min=True),
                          st.floats(min_value=1, max_value=limit).filter(lambda f: not f.is_integer()),
                          st.sampled_from([True, False]))

    @BUDGET
    @given(action=st.one_of(st.sampled_from(["charge", "discharge"]), JSON_SCALARS),
           power_w=bad_power, until=st.one_of(st.sampled_from(["23:59", "12:00"]), JSON_SCALARS))
    def check(action: Any, power_w: Any, until: Any) -> None:
        before = Untouched.now(app)
        body = json.dumps({"action": action, "power_w": power_w, "until": until}).encode()
        status, kind, data = app.request("POST", "/api/v1/manual", body)
        assert_refused(app, before, status, kind, data, {"action", "power_w", "until"})

    check()


def test_bad_register_writes_are_refused(app: LiveWeb) -> None:
    regmap = register_map(app.stack.cfg.inverter.map)
    writable = sorted(r.name for r in regmap.registers.values() if r.writable)

    def out_of_range(name: str) -> st.SearchStrategy[Any]:
        reg = regmap.registers[name]
        below = st.floats(max_value=reg.min, exclude_max=True) if reg.min is not None else st.nothing()
        above = st.floats(min_value=reg.max, exclude_min=True) if reg.max is not None else st.nothing()
        return st.one_of(NOT_A_NUMBER.filter(lambda v: not isinstance(v, str) or not _is_number(v)), below, above)

    @BUDGET
    @given(st.one_of(
        st.sampled_from(writable).flatmap(lambda name: st.tuples(st.just(name), out_of_range(name))),
        st.tuples(st.text(min_size=1, max_size=12).filter(lambda n: n not in regmap.registers), JSON_VALUES),
    ), st.one_of(st.just(True), JSON_SCALARS))
    def check(case: tuple[str, Any], confirm: Any) -> None:
        name, value = case
        before = Untouched.now(app)
        body = json.dumps({"value": value, "confirm": confirm}).encode()
        status, kind, data = app.request("PUT", f"/api/v1/registers/{urllib.parse.quote(name, safe='')}", body)
        assert_refused(app, before, status, kind, data, {"name", "value", "confirm"})

    check()


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text.strip().replace(",", ".")))
    except ValueError:
        return False


def test_malformed_bodies_are_refused(app: LiveWeb) -> None:
    endpoints = [("POST", "/api/v1/login"), ("POST", "/api/v1/password"), ("PATCH", "/api/v1/settings"),
                 ("POST", "/api/v1/manual"), ("PUT", "/api/v1/registers/prog1_soc")]

    @BUDGET
    @given(st.sampled_from(endpoints), st.one_of(
        st.binary(max_size=64),
        st.text(max_size=64).map(str.encode),
        st.integers(min_value=1, max_value=3000).map(lambda depth: b"[" * depth + b"]" * depth),
        st.sampled_from([b"NaN", b"{", b'{"a": 1} trailing', b"\xff\xfe{}", b"null", b"[]", b'"text"']),
    ).filter(lambda raw: not _json_object(raw)))
    def check(endpoint: tuple[str, str], raw: bytes) -> None:
        before = Untouched.now(app)
        status, kind, data = app.request(*endpoint, raw)
        assert_refused(app, before, status, kind, data, {"body"})

    check()


def _json_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except (ValueError, RecursionError):
        return False


def test_bad_logins_and_password_changes_are_refused(app: LiveWeb) -> None:
    @BUDGET
    @given(st.sampled_from(["/api/v1/login", "/api/v1/password"]),
           st.dictionaries(st.sampled_from(["account", "password", "old_password", "new_password",
                                            "repeat_password"]), JSON_VALUES, max_size=5))
    def check(path: str, body: dict[str, Any]) -> None:
        before = Untouched.now(app)
        status, kind, data = app.request("POST", path, json.dumps(body).encode())
        assert_refused(app, before, status, kind, data)

    check()


def test_bad_query_strings_are_refused(app: LiveWeb) -> None:
    @BUDGET
    @given(st.text(max_size=12).filter(lambda t: not (t.isascii() and t.isdigit() and 1 <= int(t) <= 500)))
    def check(limit: str) -> None:
        before = Untouched.now(app)
        status, kind, data = app.request("GET", f"/api/v1/events?limit={urllib.parse.quote(limit, safe='')}")
        assert_refused(app, before, status, kind, data, {"limit"})

    check()


def test_history_query_strings_are_checked(app: LiveWeb) -> None:
    """The history page, its CSV and the monthly report: any query string is a page (200) when
    every parameter is one they take with a value in range, else a 400 naming the parameter."""
    names = st.one_of(st.sampled_from(["period", "date", "month"]), st.text(min_size=1, max_size=6))
    values = st.one_of(st.sampled_from(["day", "week", "month", "year", "2025-03-30", "2025-10", "1999-12-31",
                                        "2101-01", "2024-W01-1", "２０２４-01-01", "nan", ""]),
                       st.text(max_size=12))

    @BUDGET
    @given(st.sampled_from(["/history", "/history.csv", "/history/report"]),
           st.dictionaries(names, values, max_size=3))
    def check(path: str, query: dict[str, str]) -> None:
        before = Untouched.now(app)
        status, _, body = app.request("GET", f"{path}?{urllib.parse.urlencode(query)}")
        assert status in (200, 400), (status, body)
        if status == 400:
            assert any(str(body).startswith(f"{name}: ") for name in query), body
        assert Untouched.now(app) == before and app.stack.bridge.commands == []

    check()


def _not_a_finite_number(text: str) -> bool:
    try:
        return not math.isfinite(float(text.replace(",", ".")))
    except ValueError:
        return True


def test_settings_form_refuses_what_is_no_number(app: LiveWeb) -> None:
    """The settings page's forms (urlencoded, as a browser sends them): text that is no finite
    number in a number field answers the page again with an error naming the field."""
    numbers = [key for key in EDITABLE["tariff"] if key != "export"]
    text = st.one_of(st.sampled_from(["nan", "NaN", "inf", "-Infinity", "1e999", "", " ", "1,2,3", "0x10"]),
                     st.text(max_size=10)).filter(_not_a_finite_number)

    @BUDGET
    @given(st.one_of(
        st.tuples(st.just({"form": "mode", "mode": "auto"}), st.just("reserve_pct"), st.just("battery.reserve_pct")),
        st.sampled_from(numbers).map(lambda key: ({"form": "tariff"}, key, f"tariff.{key}")),
    ), text)
    def check(case: tuple[dict[str, str], str, str], value: str) -> None:
        fields, name, field = case
        before = Untouched.now(app)
        body = urllib.parse.urlencode({**fields, name: value, "csrf": app.csrf}).encode()
        status, _, page = app.request("POST", "/settings", body, "application/x-www-form-urlencoded")
        assert status == 200 and 'class="flash error"' in page and f"{field}: " in page, page[-800:]
        assert Untouched.now(app) == before and app.stack.bridge.commands == []

    check()
