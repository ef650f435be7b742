"""Members' metered energy per tick: stored, checked, and what makes a tick due again.

A position equal to the stored one (the same reading ingested twice) changes nothing; a new or
different one is stored (the latest wins) and marks its tick pending, so a tick already matched
is matched again as a correction. Members with a nattery device get theirs from the device's
uploaded energy slots (:func:`from_devices`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync import db
from cloud_sync.community.members import Community, history
from cloud_sync.community.model import CommunityError, Position, check_id
from cloud_sync.schema.community import community_pending, community_positions
from cloud_sync.schema.sync import documents

MAX_POSITIONS = 100_000


@dataclass(frozen=True)
class Metered:
    member: str
    tick_start: int
    import_wh: int
    export_wh: int

    def __post_init__(self) -> None:
        check_id("member", self.member)
        Position(self.member, self.import_wh, self.export_wh)  # the same bounds as in a tick


async def store(conn: AsyncConnection, community: Community, rows: Iterable[Metered], now: float | None = None) -> int:
    """Store positions; returns how many were new or changed. Ticks must be tick starts."""
    batch = list(rows)
    if len(batch) > MAX_POSITIONS:
        raise CommunityError(f"positions: {len(batch)} at once is not allowed (up to {MAX_POSITIONS})")
    seen: dict[tuple[str, int], Metered] = {}
    for p in batch:
        if p.tick_start % community.tick_s:
            raise CommunityError(f"position {p.member}: tick_start {p.tick_start} is not allowed "
                                 f"(a multiple of {community.tick_s} s)")
        known = seen.setdefault((p.member, p.tick_start), p)
        if known != p:
            raise CommunityError(f"position {p.member} at {p.tick_start}: two different values in one upload")
    if not seen:
        return 0
    c = community_positions.c
    ticks = [t for _, t in seen]
    stored = {
        (r.member_id, r.tick_start): (r.import_wh, r.export_wh)
        for r in await conn.execute(select(c.member_id, c.tick_start, c.import_wh, c.export_wh).where(
            c.community_id == community.id, c.tick_start >= min(ticks), c.tick_start <= max(ticks)))
    }
    changed = [p for key, p in seen.items() if stored.get(key) != (p.import_wh, p.export_wh)]
    if not changed:
        return 0
    at = time.time() if now is None else now
    upsert = db.upsert(cast(db.Kind, conn.dialect.name), community_positions)
    await conn.execute(upsert.on_conflict_do_update(
        index_elements=[c.community_id, c.member_id, c.tick_start],
        set_={"import_wh": upsert.excluded.import_wh, "export_wh": upsert.excluded.export_wh,
              "received_at": upsert.excluded.received_at},
    ), [{"community_id": community.id, "member_id": p.member, "tick_start": p.tick_start, "import_wh": p.import_wh,
         "export_wh": p.export_wh, "received_at": at} for p in changed])
    pending = db.upsert(cast(db.Kind, conn.dialect.name), community_pending).on_conflict_do_nothing()
    await conn.execute(pending, [{"community_id": community.id, "tick_start": t}
                                 for t in sorted({p.tick_start for p in changed})])
    return len(changed)


async def from_devices(conn: AsyncConnection, community: Community, start: int, end: int) -> int:
    """Positions of members with a nattery device from its energy slots of ``[start, end)``
    (rounded to whole Wh), for the ticks in which it was a member. Returns how many changed."""
    found = []
    for m in await history(conn, community.id):
        if m.device_id is None:
            continue
        lo, hi = max(start, m.valid_from), end if m.valid_to is None else min(end, m.valid_to)
        d = documents.c
        rows = await conn.execute(select(d.ts, d.data).where(and_(
            d.device_id == m.device_id, d.stream == "energy", d.ts >= lo, d.ts < hi)))
        for ts, data in rows:
            slot = json.loads(data)
            if int(ts) % community.tick_s == 0:
                found.append(Metered(m.member.id, int(ts), round(slot.get("import_wh") or 0),
                                     round(slot.get("export_wh") or 0)))
    return await store(conn, community, found)
