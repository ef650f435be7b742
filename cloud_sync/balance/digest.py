"""A run's fingerprint: SHA-256 over its inputs written as canonical text lines.

Lines, in this order: ``p|<melo>|<slot>|<schedule Wh>|<schedule source>|<actual Wh>|<actual
source>`` per position sorted by metering location then slot, ``e|<slot>|<milli-EUR/MWh>`` per
price sorted by slot, ``o|<key>=<value>`` per option sorted by key; each line ends with ``\\n``.
The store builds the same text in SQL (on PostgreSQL one ``string_agg`` per member, hashed in
order as the members stream in); a test holds the two to the same digests. The results digest is the same
over ``r|<melo>|<slot>|<deviation Wh>|<cost nano-EUR>`` lines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from cloud_sync.balance.settle import MemberResult, Position


def position_line(p: Position) -> str:
    return f"p|{p.melo}|{p.ts}|{p.schedule_wh}|{p.schedule_source}|{p.actual_wh}|{p.actual_source}\n"


def input_digest(positions: Iterable[Position], prices: Mapping[int, int], options: Mapping[str, str]) -> str:
    digest = hashlib.sha256()
    for p in sorted(positions, key=lambda p: (p.melo, p.ts)):
        digest.update(position_line(p).encode())
    for ts in sorted(prices):
        digest.update(f"e|{ts}|{prices[ts]}\n".encode())
    for key in sorted(options):
        digest.update(f"o|{key}={options[key]}\n".encode())
    return digest.hexdigest()


def results_digest(results: Iterable[MemberResult]) -> str:
    digest = hashlib.sha256()
    for r in sorted(results, key=lambda r: (r.melo, r.ts)):
        digest.update(f"r|{r.melo}|{r.ts}|{r.deviation_wh}|{r.cost_nano}\n".encode())
    return digest.hexdigest()
