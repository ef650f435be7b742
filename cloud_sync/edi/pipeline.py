"""One path for every file, posted (``POST /v1/edi``) or synced (the device's ``edi`` stream):
syntax check → CONTRL; application checks of the messages that passed → APERAK; the file's
bytes, its answers, its messages and the accepted quarter-hours stored in one transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from sqlalchemy.exc import IntegrityError

from cloud_sync.db import Database
from cloud_sync.edi import answers, checks, store, syntax
from cloud_sync.edi.codes import Syntax

log = structlog.get_logger(__name__)
Source = Literal["device", "partner"]
#: The largest interchange the gateway takes (bytes). A year of one metering location's quarter-
#: hours (two series) is about 5 MB as MSCONS; a file beyond this is refused with 413, unread.
MAX_FILE_BYTES = 32 * 1024 * 1024
OVERLAP_S = 60.0


@dataclass(frozen=True)
class Upload:
    """Who sent the file: a device (its own locations' files; ``name`` its file name) or an
    operator relaying a market partner's file."""

    source: Source
    device: str | None = None
    operator: str | None = None
    name: str | None = None


def _errors(report: syntax.Report, checked: list[checks.Checked]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    faults = [(None, report.fault)] if report.fault else [(m.reference, m.fault) for m in report.messages if m.fault]
    for message, fault in faults:
        assert fault is not None
        errors.append({"level": "CONTRL", "code": fault.code.value, "segment": fault.segment, "message": message,
                       "text": fault.text})
    for item in checked:
        for finding in item.findings:
            errors.append({"level": "APERAK", "code": finding.code.value, "message": item.message.reference,
                           "where": finding.where, "text": finding.text})
    return errors


def _check_all(report: syntax.Report, context: checks.Context) -> list[checks.Checked]:
    seen: set[tuple[str, str]] = set()
    return [checks.check(m, report.decimal_mark, context, seen) for m in report.accepted_messages]


async def receive(db: Database, data: bytes, upload: Upload, now: float | None = None) -> store.Stored:
    """Run ``data`` (the interchange as received) through the gateway and store it."""
    now = time.time() if now is None else now
    # Parsing is CPU work (pydifact: about 0.1 s for a day's file, seconds for a large one): off
    # the event loop, so the aggregator keeps answering meanwhile.
    report = await asyncio.to_thread(syntax.check, data)
    digest = hashlib.sha256(data).hexdigest()
    async with db.begin() as conn:
        if report.fault is None and (earlier := await store.interchange_seen(conn, report)) is not None:
            report = report.rejected(syntax.Fault(Syntax.DUPLICATE, "UNB", f"interchange reference {report.reference!r} "
                                                                         f"of sender {report.sender.id} was received "
                                                                         f"before (file {earlier})"))
        context = await store.context(conn, report, upload.device, now)
        checked = await asyncio.to_thread(_check_all, report, context)
        file_id = await store.add_file(conn, data, digest, report, source=upload.source, device=upload.device,
                                       operator=upload.operator, name=upload.name, now=now)
        stamp = int(now)
        made = (answers.contrl(report, f"C{file_id}", stamp),
                answers.aperak(report, [c for c in checked if not c.accepted], f"A{file_id}", stamp))
        stored = await store.finish_file(conn, file_id, report, checked, made, _errors(report, checked), upload.source)
    log.info("edi_file", file=stored.id, source=upload.source, device=upload.device, accepted=stored.accepted,
             bytes=len(data), messages=len(report.messages), errors=[e["code"] for e in stored.errors][:10])
    return stored


async def run_stream(db: Database, device: str, limit: int = 500) -> int:
    """Run the device's ``edi`` stream documents not run yet; returns how many. Another instance
    running the same document first is fine: its row wins, this one is skipped."""
    async with db.read() as conn:
        pending = await store.pending_stream_files(conn, device, limit)
    done = 0
    for name, content in pending:
        try:
            await receive(db, content.encode("latin-1", "replace"), Upload("device", device=device, name=name))
        except IntegrityError:
            continue
        done += 1
    return done


async def run_new_streams(db: Database, since: float) -> float:
    """Run the files of every device whose ``edi`` stream took a batch after ``since``; returns
    the next call's ``since``: the newest such time less ``OVERLAP_S``, so a batch whose
    transaction was still open (its time set, not yet visible) is looked at again."""
    async with db.read() as conn:
        devices = await store.devices_with_new_files(conn, since)
    for device, _ in devices:
        await run_stream(db, device)
    return max([since, *(when - OVERLAP_S for _, when in devices)])
