"""The gateway's SQL (SQLAlchemy Core on :mod:`cloud_sync.schema.edi`): what the checks need to
know, and storing a file with its answers, messages and quarter-hours in one transaction."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.edi.checks import Checked, Context, Location
from cloud_sync.edi.syntax import Report
from cloud_sync.schema.edi import edi_files, edi_locations, edi_messages, edi_partners, edi_values
from cloud_sync.schema.sync import documents, streams

_MILLI = 1000


@dataclass(frozen=True)
class Stored:
    """A file as stored: its id and what the answers say."""

    id: int
    accepted: bool
    contrl: str
    aperak: str | None
    errors: list[dict[str, Any]]


def _first(element: Any) -> str:
    return str(element[0] if isinstance(element, list) else element)


def _values_of(report: Report, tag: str, qualifier: str) -> set[str]:
    """The second element of every ``tag+qualifier`` segment of the accepted messages (LOC IDs, NAD parties)."""
    return {_first(s.elements[1]) for m in report.accepted_messages for s in m.body
            if s.tag == tag and len(s.elements) > 1 and s.elements[0] == qualifier}


async def context(conn: AsyncConnection, report: Report, device: str | None, received: float) -> Context:
    """What the checks of ``report``'s messages need from the database (``received``: when the
    file arrived)."""
    ids = _values_of(report, "LOC", "172")
    rows = (await conn.execute(select(edi_locations).where(
        or_(edi_locations.c.melo_id.in_(ids), edi_locations.c.malo_id.in_(ids))))).all() if ids else []
    locations: dict[str, Location] = {}
    for row in rows:
        location = Location(row.melo_id, row.malo_id, row.device_id)
        locations[row.melo_id] = location
        if row.malo_id:
            locations[row.malo_id] = location
    partners = {str(p) for p in (await conn.execute(select(edi_partners.c.partner_id))).scalars()}
    senders = _values_of(report, "NAD", "MS")
    earlier = (await conn.execute(
        select(edi_messages.c.sender_id, edi_messages.c.document_number, func.min(edi_messages.c.file_id))
        .where(edi_messages.c.accepted, edi_messages.c.sender_id.in_(senders))
        .group_by(edi_messages.c.sender_id, edi_messages.c.document_number))).all() if senders else []
    return Context(locations, frozenset(partners), {(s, d): int(f) for s, d, f in earlier}, device, received)


async def interchange_seen(conn: AsyncConnection, report: Report) -> int | None:
    """The file that brought the same sender's interchange reference before (None: new)."""
    row = (await conn.execute(select(edi_files.c.id).where(
        edi_files.c.sender_id == report.sender.id, edi_files.c.reference == report.reference, edi_files.c.syntax_ok,
    ).limit(1))).first()
    return None if row is None else int(row[0])


async def add_file(conn: AsyncConnection, data: bytes, digest: str, report: Report, *, source: str,
                   device: str | None, operator: str | None, name: str | None, now: float) -> int:
    """Insert the file as received (answers still empty); returns its id."""
    result = await conn.execute(edi_files.insert().values(
        received_at=now, source=source, device_id=device, operator=operator, name=name, size=len(data),
        sha256=digest, content=data, sender_id=report.sender.id, receiver_id=report.receiver.id,
        reference=report.reference, syntax_ok=report.fault is None, accepted=False, contrl="", aperak=None,
        errors="[]",
    ).returning(edi_files.c.id))
    return int(result.scalar_one())


async def finish_file(conn: AsyncConnection, file_id: int, report: Report, checked: Sequence[Checked],
                      answers: tuple[str, str | None], errors: list[dict[str, Any]], source: str) -> Stored:
    """Store the answers, the messages and the accepted messages' quarter-hours."""
    accepted = report.fault is None and all(m.fault is None for m in report.messages) and all(c.accepted for c in checked)
    contrl, aperak = answers
    await conn.execute(edi_files.update().where(edi_files.c.id == file_id).values(
        accepted=accepted, contrl=contrl, aperak=aperak, errors=json.dumps(errors)))
    rows = []
    for position, item in enumerate(checked, 1):
        p = item.profile
        rows.append({
            "file_id": file_id, "position": position, "reference": item.message.reference,
            "document_number": p.document_number if p else "", "sender_id": p.sender.id if p else report.sender.id,
            "melo_id": item.location.melo_id if item.location else (p.melo_id if p else None),
            "check_id": p.check_id if p else "", "version": p.version if p else "",
            "document_date": p.document_date if p else None, "period_start": p.start if p else None,
            "period_end": p.end if p else None, "accepted": item.accepted,
        })
    if rows:
        await conn.execute(edi_messages.insert(), rows)
    values = [{"melo_id": item.location.melo_id, "obis": series.obis, "slot_start": v.start, "source": source,
               "wh": int(v.kwh * _MILLI), "status": v.status, "method": v.method, "file_id": file_id}
              for item in checked if item.accepted and item.profile and item.location
              for series in item.stored_series for v in series.values]
    if values:
        await _upsert_values(conn, values)
    return Stored(file_id, accepted, contrl, aperak, errors)


async def _upsert_values(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    insert = postgresql.insert(edi_values) if conn.dialect.name == "postgresql" else sqlite.insert(edi_values)
    statement = insert.on_conflict_do_update(
        index_elements=["melo_id", "obis", "slot_start", "source"],
        set_={c: insert.excluded[c] for c in ("wh", "status", "method", "file_id")},
    )
    for chunk in range(0, len(rows), 5000):
        await conn.execute(statement, rows[chunk:chunk + 5000])


async def pending_stream_files(conn: AsyncConnection, device: str, limit: int) -> list[tuple[str, str]]:
    """(name, content) of the device's ``edi`` stream documents not run through the gateway yet
    (the documents' key begins with (device, stream): an index range, not a scan)."""
    query = (select(documents.c.key, documents.c.data)
             .where(documents.c.device_id == device, documents.c.stream == "edi", ~exists().where(and_(
                 edi_files.c.device_id == documents.c.device_id, edi_files.c.name == documents.c.key)))
             .order_by(documents.c.seq).limit(limit))
    return [(r.key, str(json.loads(r.data).get("content", ""))) for r in (await conn.execute(query)).all()]


async def devices_with_new_files(conn: AsyncConnection, since: float) -> list[tuple[str, float]]:
    """(device, when its ``edi`` stream last took a batch) for the streams that did after ``since``."""
    rows = (await conn.execute(select(streams.c.device_id, func.max(streams.c.updated_at))
                               .where(streams.c.stream == "edi", streams.c.updated_at > since)
                               .group_by(streams.c.device_id))).all()
    return [(str(d), float(t)) for d, t in rows]


async def answers_for(conn: AsyncConnection, device: str, names: Iterable[str]) -> list[dict[str, Any]]:
    """The answers to the device's files of these names (those the gateway has run)."""
    wanted = list(names)
    if not wanted:
        return []
    rows = (await conn.execute(select(edi_files.c.id, edi_files.c.name, edi_files.c.accepted, edi_files.c.contrl,
                                      edi_files.c.aperak, edi_files.c.errors, edi_files.c.received_at)
                               .where(edi_files.c.device_id == device, edi_files.c.name.in_(wanted)))).all()
    return [{"name": r.name, "state": "accepted" if r.accepted else "rejected", "file_id": r.id,
             "errors": json.loads(r.errors), "contrl": r.contrl, "aperak": r.aperak, "received_at": r.received_at}
            for r in rows]


async def device_locations(conn: AsyncConnection, device: str) -> list[str]:
    return [str(m) for m in (await conn.execute(
        select(edi_locations.c.melo_id).where(edi_locations.c.device_id == device).order_by(edi_locations.c.melo_id))).scalars()]


async def values(conn: AsyncConnection, melo_id: str, start: int, end: int) -> list[tuple[str, str, int, int]]:
    """(source, obis, slot start, Wh) of one metering location in [start, end)."""
    rows = (await conn.execute(select(edi_values.c.source, edi_values.c.obis, edi_values.c.slot_start, edi_values.c.wh)
                               .where(edi_values.c.melo_id == melo_id, edi_values.c.slot_start >= start,
                                      edi_values.c.slot_start < end))).all()
    return [(str(s), str(o), int(t), int(w)) for s, o, t, w in rows]


async def file_row(conn: AsyncConnection, file_id: int) -> Any:
    return (await conn.execute(select(edi_files).where(edi_files.c.id == file_id))).first()


async def register_partner(conn: AsyncConnection, partner_id: str, qualifier: str, name: str) -> None:
    insert = postgresql.insert(edi_partners) if conn.dialect.name == "postgresql" else sqlite.insert(edi_partners)
    await conn.execute(insert.values(partner_id=partner_id, qualifier=qualifier, name=name, created_at=time.time())
                       .on_conflict_do_update(index_elements=["partner_id"],
                                              set_={"qualifier": qualifier, "name": name}))


async def register_location(conn: AsyncConnection, melo_id: str, malo_id: str | None, device: str | None) -> None:
    insert = postgresql.insert(edi_locations) if conn.dialect.name == "postgresql" else sqlite.insert(edi_locations)
    await conn.execute(insert.values(melo_id=melo_id, malo_id=malo_id, device_id=device, created_at=time.time())
                       .on_conflict_do_update(index_elements=["melo_id"], set_={"malo_id": malo_id, "device_id": device}))

