"""``nattery-cloud edi …``: the gateway's registry of partners and metering locations, and a
file run through the gateway from the command line (the same pipeline as ``POST /v1/edi``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import click

from cloud_sync.db import Database, DatabaseError, using
from cloud_sync.edi import pipeline, store
from common import market_ids

DbOption = Callable[[Callable[..., Any]], Callable[..., Any]]


def group(db_option: DbOption) -> click.Group:
    """The ``edi`` command group, each command with the aggregator's ``--db`` option."""

    @click.group()
    def edi() -> None:
        """The EDI gateway: market partners, metering locations, files (docs/edi.md)."""

    @edi.command()
    @db_option
    @click.argument("partner_id")
    @click.option("--qualifier", required=True, type=click.Choice(["9", "293", "332"]),
                  help="NAD code list: 9 GS1, 293 BDEW, 332 DVGW.")
    @click.option("--name", default="", help="Who it is (shown to operators).")
    def partner(target: str, partner_id: str, qualifier: str, name: str) -> None:
        """Register (or update) market partner PARTNER_ID, whose files the gateway takes."""
        _checked(lambda: market_ids.check_partner(partner_id, qualifier))
        _run(target, lambda conn: store.register_partner(conn, partner_id, qualifier, name))
        click.echo(f"partner {partner_id} ({qualifier}) registered")

    @edi.command()
    @db_option
    @click.argument("melo_id")
    @click.option("--malo", "malo_id", default=None, help="The market location (MaLo-ID) it belongs to.")
    @click.option("--device", "device_id", default=None, help="The device that measures it.")
    def location(target: str, melo_id: str, malo_id: str | None, device_id: str | None) -> None:
        """Register (or update) metering location MELO_ID."""
        _checked(lambda: market_ids.check_melo(melo_id))
        if malo_id is not None:
            _checked(lambda: market_ids.check_malo(malo_id))
        _run(target, lambda conn: store.register_location(conn, melo_id, malo_id, device_id))
        click.echo(f"location {melo_id} registered")

    @edi.command()
    @db_option
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--device", default=None, help="The file is this device's own (else a partner's).")
    def receive(target: str, file: Path, device: str | None) -> None:
        """Run FILE through the gateway as if posted, store it, print the answers as JSON."""
        data = file.read_bytes()
        if len(data) > pipeline.MAX_FILE_BYTES:
            raise click.ClickException(f"{file}: {len(data)} bytes; the limit is {pipeline.MAX_FILE_BYTES}")
        upload = pipeline.Upload("device", device=device) if device else pipeline.Upload("partner", operator="cli")

        stored = _sync(using(target, lambda db: pipeline.receive(db, data, upload)))
        click.echo(json.dumps({"accepted": stored.accepted, "file_id": stored.id, "contrl": stored.contrl,
                               "aperak": stored.aperak, "errors": stored.errors}, indent=2))

    return edi


def _checked(check: Callable[[], object]) -> None:
    try:
        check()
    except market_ids.IdError as exc:
        raise click.ClickException(str(exc)) from None


def _sync(main: Coroutine[Any, Any, Any]) -> Any:
    try:
        return asyncio.run(main)
    except (DatabaseError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


def _run(target: str, action: Callable[[Any], Coroutine[Any, Any, None]]) -> None:
    async def in_transaction(db: Database) -> None:
        async with db.begin() as conn:
            await action(conn)

    _sync(using(target, in_transaction))
