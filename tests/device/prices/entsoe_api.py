"""A local stand-in for the ENTSO-E Transparency Platform API (https://web-api.tp.entsoe.eu/api).

Answers like the real service, so the real entsoe-py client and our code run unchanged:
``Publication_MarketDocument`` (A44 prices; PT60M before delivery day 2025-10-01, PT15M after;
curve type A03 with repeated values left out), ``GL_MarketDocument`` (A65 load forecast, A69
wind/solar forecast), the "No matching data found" ``Acknowledgement_MarketDocument`` (HTTP 200,
text/xml), 429 and 503 pages, and a request that never answers. Documents follow the layouts of
the ENTSO-E implementation guide (one TimeSeries per delivery day, UTC intervals ``...Z``).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web

BRUSSELS = ZoneInfo("Europe/Brussels")
DOMAINS = {"10Y1001A1001A82H": "DE_LU", "10YNL----------L": "NL", "10YAT-APG------L": "AT"}
ZONE_OFFSET = {"DE_LU": 0.0, "NL": 7.5, "AT": 3.0}


def price(zone: str, ts: datetime, sequence: int = 1) -> float:
    """Deterministic prices: a daily shape, a zone offset, EXAA (sequence 2) a bit lower.

    Rounded to whole euros per hour (all four quarter-hours equal), so A03 compression leaves
    positions out exactly as ENTSO-E does with repeated values.
    """
    hour = ts.astimezone(BRUSSELS).hour
    base = 80 + 40 * math.sin((hour - 6) / 24 * 2 * math.pi) + ZONE_OFFSET.get(zone, 0.0) + (ts.day % 3)
    return float(round(base - (4.0 if sequence == 2 else 0.0)))


def quantity(kind: str, ts: datetime) -> float:
    hour = ts.astimezone(BRUSSELS).hour
    if kind == "B16":  # solar
        return float(max(0, round(30000 * math.sin((hour - 6) / 14 * math.pi)))) if 6 <= hour <= 20 else 0.0
    if kind == "B18":
        return 3000.0 + 10 * hour
    if kind == "B19":
        return 15000.0 + 100 * hour
    return 55000.0 + 500 * hour  # load


def day_interval(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=BRUSSELS).astimezone(UTC)
    nxt = day + timedelta(days=1)
    return start, datetime(nxt.year, nxt.month, nxt.day, tzinfo=BRUSSELS).astimezone(UTC)


def z(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%MZ")


@dataclass
class Api:
    """What the fake service knows and how it misbehaves; tests change it between calls."""

    published_until: date = date(2100, 1, 1)  # last delivery day with prices (SDAC)
    exaa_until: date = date(2100, 1, 1)
    forecasts_until: date = date(2100, 1, 1)
    partial: dict[date, int] = field(default_factory=dict)  # day → slots published so far
    failures: deque[str] = field(default_factory=deque)  # next answers: "429", "503", "hang", "401"
    requests: list[dict[str, str]] = field(default_factory=list)
    hang_s: float = 30.0
    hanging: asyncio.Event = field(default_factory=asyncio.Event)  # set when a "hang" begins

    async def handle(self, request: web.Request) -> web.StreamResponse:
        params = dict(request.query)
        self.requests.append(params)
        if self.failures:
            failure = self.failures.popleft()
            if failure == "hang":
                self.hanging.set()
                await asyncio.sleep(self.hang_s)
            if failure == "429":
                return web.Response(status=429, text="Too Many Requests", headers={"Retry-After": "0"})
            if failure == "503":
                return web.Response(status=503, content_type="text/html",
                                    text="<html><body><h1>503 Service Unavailable</h1></body></html>")
            if failure == "401":
                return web.Response(status=401, content_type="text/html",
                                    text="<html><body><h1>401 Unauthorized</h1></body></html>")
        if not params.get("securityToken"):
            return web.Response(status=401, text="Unauthorized")
        start = datetime.strptime(params["periodStart"], "%Y%m%d%H%M").replace(tzinfo=UTC)
        end = datetime.strptime(params["periodEnd"], "%Y%m%d%H%M").replace(tzinfo=UTC)
        doc = params["documentType"]
        if doc == "A44":
            zone = DOMAINS[params["in_Domain"]]
            seq = int(params.get("classificationSequence_AttributeInstanceComponent.position", "1"))
            if int(params.get("offset", "0")) > 0:
                return self.no_data(doc, start, end)
            last = self.published_until if seq == 1 else self.exaa_until
            body = self.prices(zone, seq, start, end, last)
        elif doc in ("A65", "A69"):
            zone = DOMAINS[params.get("outBiddingZone_Domain") or params["in_Domain"]]
            body = self.quantities(doc, zone, start, end)
        else:
            return web.Response(status=400, text=f"unsupported documentType {doc}")
        return body or self.no_data(doc, start, end)

    def _days(self, start: datetime, end: datetime, last: date) -> list[date]:
        day = start.astimezone(BRUSSELS).date()
        out = []
        while day_interval(day)[0] < end and day <= last:
            if day_interval(day)[1] > start:
                out.append(day)
            day += timedelta(days=1)
        return out

    def prices(self, zone: str, seq: int, start: datetime, end: datetime, last: date) -> web.Response | None:
        series = []
        for n, day in enumerate(self._days(start, end, last), start=1):
            d0, d1 = day_interval(day)
            step = 900 if day >= date(2025, 10, 1) or seq == 2 else 3600
            slots = int((d1 - d0).total_seconds()) // step
            shown = self.partial.get(day, slots) if seq == 1 else slots
            points, previous = [], None
            for k in range(shown):
                value = price(zone, d0 + timedelta(seconds=k * step), seq)
                if shown == slots and value == previous:
                    continue  # A03: a repeated value is left out
                points.append(f"<Point><position>{k + 1}</position><price.amount>{value:.2f}</price.amount></Point>")
                previous = value
            curve = "A03" if shown == slots else "A01"  # a partial day lists its points one by one
            series.append(f"""<TimeSeries>
    <mRID>{n}</mRID><auction.type>A01</auction.type><businessType>A62</businessType>
    <in_Domain.mRID codingScheme="A01">{_code(zone)}</in_Domain.mRID>
    <out_Domain.mRID codingScheme="A01">{_code(zone)}</out_Domain.mRID>
    <contract_MarketAgreement.type>A01</contract_MarketAgreement.type>
    <currency_Unit.name>EUR</currency_Unit.name><price_Measure_Unit.name>MWH</price_Measure_Unit.name>
    <classificationSequence_AttributeInstanceComponent.position>{seq}</classificationSequence_AttributeInstanceComponent.position>
    <curveType>{curve}</curveType>
    <Period><timeInterval><start>{z(d0)}</start><end>{z(d1)}</end></timeInterval>
      <resolution>{"PT15M" if step == 900 else "PT60M"}</resolution>
      {"".join(points)}
    </Period>
  </TimeSeries>""")
        if not series:
            return None
        return self._xml("Publication_MarketDocument", "publicationdocument:7:3", "A44", start, end, series)

    def quantities(self, doc: str, zone: str, start: datetime, end: datetime) -> web.Response | None:
        days = self._days(start, end, self.forecasts_until)
        kinds = ["B16", "B18", "B19"] if doc == "A69" else ["load"]
        series: list[str] = []
        for kind in kinds:
            for day in days:
                d0, d1 = day_interval(day)
                slots = int((d1 - d0).total_seconds()) // 900
                points = "".join(
                    f"<Point><position>{k + 1}</position><quantity>{quantity(kind, d0 + timedelta(minutes=15 * k)):.0f}</quantity></Point>"
                    for k in range(slots)
                )
                domain = "inBiddingZone_Domain.mRID" if doc == "A69" else "outBiddingZone_Domain.mRID"
                psr = f"<MktPSRType><psrType>{kind}</psrType></MktPSRType>" if doc == "A69" else ""
                series.append(f"""<TimeSeries>
    <mRID>{len(series) + 1}</mRID><businessType>{"A94" if doc == "A69" else "A04"}</businessType>
    <objectAggregation>A01</objectAggregation>
    <{domain} codingScheme="A01">{_code(zone)}</{domain}>
    <quantity_Measure_Unit.name>MAW</quantity_Measure_Unit.name><curveType>A01</curveType>{psr}
    <Period><timeInterval><start>{z(d0)}</start><end>{z(d1)}</end></timeInterval>
      <resolution>PT15M</resolution>{points}</Period>
  </TimeSeries>""")
        if not series:
            return None
        return self._xml("GL_MarketDocument", "generationloaddocument:3:0", doc, start, end, series)

    @staticmethod
    def _xml(root: str, ns: str, doc: str, start: datetime, end: datetime, series: list[str]) -> web.Response:
        body = f"""<?xml version="1.0" encoding="UTF-8"?>
<{root} xmlns="urn:iec62325.351:tc57wg16:451-3:{ns}">
  <mRID>0f1e2d3c4b5a69788796a5b4c3d2e1f0</mRID><revisionNumber>1</revisionNumber><type>{doc}</type>
  <sender_MarketParticipant.mRID codingScheme="A01">10X1001A1001A450</sender_MarketParticipant.mRID>
  <sender_MarketParticipant.marketRole.type>A32</sender_MarketParticipant.marketRole.type>
  <receiver_MarketParticipant.mRID codingScheme="A01">10X1001A1001A450</receiver_MarketParticipant.mRID>
  <receiver_MarketParticipant.marketRole.type>A33</receiver_MarketParticipant.marketRole.type>
  <createdDateTime>2025-10-14T12:03:11Z</createdDateTime>
  <period.timeInterval><start>{z(start)}</start><end>{z(end)}</end></period.timeInterval>
  {"".join(series)}
</{root}>"""
        return _xml_response(body)

    @staticmethod
    def no_data(doc: str, start: datetime, end: datetime) -> web.Response:
        body = f"""<?xml version="1.0" encoding="UTF-8"?>
<Acknowledgement_MarketDocument xmlns="urn:iec62325.351:tc57wg16:451-1:acknowledgementdocument:7:0">
  <mRID>4b1f5e7c-8d22-4c0e-a0d3-2f8e5c1b9a77</mRID>
  <createdDateTime>2025-10-14T10:15:02Z</createdDateTime>
  <sender_MarketParticipant.mRID codingScheme="A01">10X1001A1001A450</sender_MarketParticipant.mRID>
  <sender_MarketParticipant.marketRole.type>A32</sender_MarketParticipant.marketRole.type>
  <receiver_MarketParticipant.mRID codingScheme="A01">10X1001A1001A39I</receiver_MarketParticipant.mRID>
  <receiver_MarketParticipant.marketRole.type>A39</receiver_MarketParticipant.marketRole.type>
  <received_MarketDocument.createdDateTime>2025-10-14T10:15:02Z</received_MarketDocument.createdDateTime>
  <Reason><code>999</code><text>No matching data found for Data item {doc} and interval {z(start)}/{z(end)}.</text></Reason>
</Acknowledgement_MarketDocument>"""
        return _xml_response(body)


def _xml_response(body: str) -> web.Response:
    # exactly "text/xml" as the real service sends it: entsoe-py compares the header verbatim
    return web.Response(body=body.encode(), headers={"Content-Type": "text/xml"})


def _code(zone: str) -> str:
    return {v: k for k, v in DOMAINS.items()}[zone]


async def serve(api: Api, port: int) -> web.AppRunner:
    app = web.Application()
    app.router.add_get("/api", api.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner
