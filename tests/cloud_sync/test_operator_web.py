"""The operator page at a real ``nattery-cloud serve`` (SQLite and PostgreSQL), over HTTP: login
and the audit log, what each page shows for a seeded fleet, hostile input, CSRF, the audit log's
append-only guard and the fleet tool's audit endpoint. The browser's view is in
tests/e2e/test_operator_browser.py."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import delete, select, update

from cloud_sync.schema.operators import audit_log

from tests.cloud_sync.aggregator import Aggregator, aggregator, cloud_target, pg_url, run  # noqa: F401
from tests.cloud_sync.fleet_data import SCHEDULE_KWH, Fleet, seed

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="module")
def fleet(aggregator: Aggregator) -> Fleet:
    return seed(aggregator)


@pytest.fixture(scope="module")
def operator(aggregator: Aggregator) -> str:
    return aggregator.add_operator("olga")


def csrf_of(page: str) -> str:
    found = CSRF.search(page)
    assert found, page
    return found.group(1)


def logged_in(agg: Aggregator, credential: str) -> requests.Session:
    browser = requests.Session()
    form = browser.get(f"{agg.url}/ops/login", timeout=30)
    answer = browser.post(f"{agg.url}/ops/login", data={"csrf": csrf_of(form.text), "credential": credential},
                          timeout=30)
    assert answer.status_code == 200 and answer.url == f"{agg.url}/ops/", answer.text
    return browser


@pytest.fixture(scope="module")
def olga(aggregator: Aggregator, operator: str) -> Iterator[requests.Session]:
    with logged_in(aggregator, operator) as session:
        yield session


def audit_rows(agg: Aggregator) -> list[tuple[str, str, str | None, str, str]]:
    return [tuple(r) for r in run(_audit(agg))]  # type: ignore[misc]


async def _audit(agg: Aggregator) -> list[tuple[object, ...]]:
    from tests.cloud_sync.aggregator import _fetch

    a = audit_log.c
    return await _fetch(agg.target, select(a.actor, a.action, a.target, a.source, a.outcome).order_by(a.id))


def test_login_is_audited_and_a_wrong_credential_is_refused_and_audited(
        aggregator: Aggregator, operator: str) -> None:
    anonymous = requests.Session()
    assert anonymous.get(f"{aggregator.url}/ops/", timeout=30).url == f"{aggregator.url}/ops/login"
    form = anonymous.get(f"{aggregator.url}/ops/login", timeout=30).text
    wrong = operator[:-4] + "AAAA"
    refused = anonymous.post(f"{aggregator.url}/ops/login", data={"csrf": csrf_of(form), "credential": wrong},
                             timeout=30)
    assert refused.status_code == 401 and "credential not accepted for operator &#39;olga&#39;" in refused.text
    with logged_in(aggregator, operator) as session:
        assert "Fleet" in session.get(f"{aggregator.url}/ops/", timeout=30).text
        logout = session.post(f"{aggregator.url}/ops/logout",
                              data={"csrf": csrf_of(session.get(f"{aggregator.url}/ops/", timeout=30).text)}, timeout=30)
        assert logout.url == f"{aggregator.url}/ops/login"
        assert session.get(f"{aggregator.url}/ops/", timeout=30).url == f"{aggregator.url}/ops/login"
    rows = [r for r in audit_rows(aggregator) if r[1] in ("login", "logout")]
    assert ("op:olga", "login", None, "127.0.0.1", "refused: credential not accepted for operator 'olga'") in rows
    assert ("op:olga", "login", None, "127.0.0.1", "ok") in rows
    assert ("op:olga", "logout", None, "127.0.0.1", "ok") in rows


def test_a_device_credential_cannot_log_in(aggregator: Aggregator, fleet: Fleet) -> None:
    session = requests.Session()
    form = session.get(f"{aggregator.url}/ops/login", timeout=30).text
    answer = session.post(f"{aggregator.url}/ops/login", timeout=30,
                          data={"csrf": csrf_of(form), "credential": fleet.credentials["ops-a"]})
    assert answer.status_code == 403 and "a device credential cannot log in" in answer.text
    assert ("dev:ops-a", "login", None, "127.0.0.1", "refused: a device credential cannot log in to the operator page") \
        in audit_rows(aggregator)


def test_fleet_page_shows_state_alerts_and_savings(aggregator: Aggregator, fleet: Fleet,
                                                   olga: requests.Session) -> None:
    page = olga.get(f"{aggregator.url}/ops/", timeout=30).text
    row = {d: re.search(rf'<tr data-device="{d}">(.*?)</tr>', page, re.S).group(1)  # type: ignore[union-attr]
           for d in ("ops-a", "ops-late", "ops-new")}
    assert "online" in row["ops-a"] and "64 %" in row["ops-a"] and f"{fleet.savings_eur:,.2f} EUR" in row["ops-a"]
    assert "sync_lag" in row["ops-late"] and "sync_lag" not in row["ops-a"]
    assert "offline" in row["ops-new"]
    for word in ("None", "nan", "NaN", "undefined"):
        assert word not in page
    api = requests.get(f"{aggregator.url}/v1/devices/ops-a", timeout=30,
                       headers={"Authorization": f"Bearer {aggregator.add_operator('api-reader')}"}).json()
    assert api["savings_month_eur"] == pytest.approx(fleet.savings_eur)


def test_device_page_shows_telemetry_sync_settlement_and_edi(aggregator: Aggregator, fleet: Fleet,
                                                             olga: requests.Session) -> None:
    page = olga.get(f"{aggregator.url}/ops/devices/ops-a", timeout=30).text
    assert "soc_pct" in page and "64.0" in page
    assert "MSCONS_ops_1.edi" in page
    # the gateway's answer, once it ran the file (the device asking for its answers runs it now)
    requests.get(f"{aggregator.url}/v1/edi/answers", params={"name": "MSCONS_ops_1.edi"}, timeout=30,
                 headers={"Authorization": f"Bearer {fleet.credentials['ops-a']}"}).raise_for_status()
    edi = olga.get(f"{aggregator.url}/ops/devices/ops-a", timeout=30).text
    edi = edi[edi.index('<section id="edi">'):]
    assert re.search(r"<td>rejected \(\d+ errors\)</td>", edi), edi  # the seeded file is no MSCONS
    plan = page[page.index('<section id="plan">'):page.index('<section id="sync">')]
    assert "intraday" in plan and f"{SCHEDULE_KWH:.2f} kWh" in plan and "day_ahead" not in plan  # the newest revision
    assert f"{fleet.savings_eur:,.2f} EUR" in page
    assert "100.0 %" in page  # every quarter-hour since registration synced, fully covered
    for stream in ("readings", "energy", "settlements", "edi", "schedules", "prices"):
        assert f"<td>{stream}</td>" in page
    for word in ("None", "nan", "NaN", "undefined"):
        assert word not in page


def test_forecast_accuracy_by_zone_and_horizon(aggregator: Aggregator, fleet: Fleet,
                                               olga: requests.Session) -> None:
    page = olga.get(f"{aggregator.url}/ops/forecasts?days=7", timeout=30).text
    cells = [re.findall(r"<td>(.*?)</td>", r) for r in re.findall(r"<tr>(<td>.*?)</tr>", page)]
    assert cells == [
        ["DE_LU", "0–24 h", str(fleet.priced_hours), "5.00", "5.00", "6.2 %"],
        ["DE_LU", "24–48 h", str(fleet.priced_hours), "10.00", "10.00", "12.5 %"],
    ]


def test_data_quality_per_device(aggregator: Aggregator, fleet: Fleet, olga: requests.Session) -> None:
    page = olga.get(f"{aggregator.url}/ops/quality?days=7", timeout=30).text
    row = re.search(r'<tr data-device="ops-a">(.*?)</tr>', page, re.S).group(1)  # type: ignore[union-attr]
    assert f"{fleet.energy_slots} / {fleet.energy_slots}" in row and row.count("100.0 %") == 2
    assert "None" not in page


@pytest.mark.parametrize(("path", "status", "message"), [
    ("/ops/devices/no-such-device", 404, "no device &#39;no-such-device&#39; is registered"),
    ("/ops/devices/%3Cscript%3Ealert(1)%3C%2Fscript%3E", 404, "no device &#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39;"),
    ("/ops/forecasts?days=abc", 400, "days: got &#39;abc&#39;, expected an integer"),
    ("/ops/quality?days=0", 400, "days: got 0, allowed: 1 to 90"),
    ("/ops/quality?days=1e9", 400, "days: got &#39;1e9&#39;"),
    ("/ops/audit?before=-3", 400, "before: got -3, allowed: 1 to"),
    ("/ops/nothing/here", 404, "no page at /ops/nothing/here"),
])
def test_hostile_input_gets_a_page_naming_what_was_wrong(aggregator: Aggregator, olga: requests.Session,
                                                         path: str, status: int, message: str) -> None:
    answer = olga.get(f"{aggregator.url}{path}", timeout=30)
    assert answer.status_code == status
    assert answer.headers["Content-Type"].startswith("text/html")
    assert message in answer.text
    assert "<script>" not in answer.text


def test_state_changes_need_the_sessions_csrf_token(aggregator: Aggregator, fleet: Fleet,
                                                    olga: requests.Session) -> None:
    for data in ({}, {"csrf": "forged"}):
        refused = olga.post(f"{aggregator.url}/ops/devices/ops-new/revoke", data=data, timeout=30)
        assert refused.status_code == 403 and "CSRF token missing or wrong" in refused.text
    anonymous = requests.post(f"{aggregator.url}/ops/login", data={"credential": "op.x.y"}, timeout=30)
    assert anonymous.status_code == 403
    assert not any(r[1] == "device_revoke" and r[2] == "ops-new" for r in audit_rows(aggregator))


def test_revoking_a_device_from_the_page_is_audited(aggregator: Aggregator, fleet: Fleet,
                                                    olga: requests.Session) -> None:
    page = olga.get(f"{aggregator.url}/ops/devices/ops-new", timeout=30).text
    done = olga.post(f"{aggregator.url}/ops/devices/ops-new/revoke", data={"csrf": csrf_of(page)}, timeout=30)
    assert done.status_code == 200 and done.url == f"{aggregator.url}/ops/devices/ops-new"
    assert 'class="state revoked"' in done.text
    assert ("op:olga", "device_revoke", "ops-new", "127.0.0.1", "ok") in audit_rows(aggregator)
    audit_page = olga.get(f"{aggregator.url}/ops/audit", timeout=30).text
    assert "device_revoke" in html.unescape(audit_page) and "ops-new" in audit_page


def test_the_audit_log_refuses_update_and_delete(aggregator: Aggregator, olga: requests.Session) -> None:
    before = audit_rows(aggregator)
    assert before
    for statement in (update(audit_log).values(outcome="ok"), delete(audit_log)):
        with pytest.raises(Exception, match="append-only"):
            aggregator.execute(statement)
    assert audit_rows(aggregator) == before


def test_the_fleet_tool_records_its_actions(aggregator: Aggregator, fleet: Fleet) -> None:
    operator = aggregator.add_operator("fleet-op")
    url = f"{aggregator.url}/v1/audit"
    entry = {"action": "config_set", "target": "device 7f3a", "outcome": "ok",
             "detail": {"NATTERY_INVERTER_POLL_INTERVAL_S": "2"}}
    assert requests.post(url, json=entry, timeout=30, headers={"Authorization": f"Bearer {operator}"}).status_code == 201
    assert ("op:fleet-op", "config_set", "device 7f3a", "127.0.0.1", "ok") in audit_rows(aggregator)
    bad = requests.post(url, json={**entry, "action": "drop_tables"}, timeout=30,
                        headers={"Authorization": f"Bearer {operator}"})
    assert bad.status_code == 400 and bad.json()["error"].startswith("action: got 'drop_tables', allowed: config_set")
    device = requests.post(url, json=entry, timeout=30, headers={"Authorization": f"Bearer {fleet.credentials['ops-a']}"})
    assert device.status_code == 403


def test_login_guesses_are_limited_like_api_credentials(tmp_path: Path) -> None:
    agg = Aggregator(str(tmp_path / "cloud.db"), tmp_path / "aggregator.log", options=("--auth-failures", "2"))
    agg.start()
    try:
        credential = agg.add_operator("guessed")
        browser = requests.Session()
        answers = []
        for _ in range(3):
            form = browser.get(f"{agg.url}/ops/login", timeout=30).text
            answers.append(browser.post(f"{agg.url}/ops/login", timeout=30,
                                        data={"csrf": csrf_of(form), "credential": credential[:-2] + "xx"}))
        assert [a.status_code for a in answers] == [401, 401, 429]
        assert "too many failed credentials from this address or for operator &#39;guessed&#39;" in answers[2].text
        assert audit_rows(agg)[-1][4].startswith("refused: too many failed credentials")
    finally:
        agg.stop()
