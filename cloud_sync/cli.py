"""The ``nattery-cloud`` command: run the aggregator, register devices and operators."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click
import uvloop

from cloud_sync import app, queries, registry
from cloud_sync.audit import cli_actor
from cloud_sync.balance import cli as balance_cli
from cloud_sync.community import cli as community_cli
from cloud_sync.db import DatabaseError, using
from cloud_sync.edi import cli as edi_cli
from cloud_sync.limits import Limits
from common import logs

F = TypeVar("F", bound=Callable[..., Any])
ACTOR = cli_actor("nattery-cloud")  # who the audit log names for the commands run here


def db_option(fn: F) -> F:
    return click.option(
        "--db",
        "target",
        envvar="NATTERY_CLOUD_DB",
        default="nattery-cloud.db",
        show_default=True,
        help="SQLite file, or a postgresql://user@host/db URL (env NATTERY_CLOUD_DB).",
    )(fn)


def _run(main: Coroutine[Any, Any, Any], loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> Any:
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(main)
    except (DatabaseError, registry.RegistryError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]),
              show_default=True, help="Log verbosity.")
@click.option("--log-format", default="auto", type=click.Choice(["auto", "json", "console"]),
              show_default=True, help="JSON off a terminal unless told otherwise.")
@click.version_option(package_name="nattery")
def main(log_level: str, log_format: str) -> None:
    """nattery-cloud: the aggregator that nattery devices sync to."""
    logs.configure(log_level, log_format)


@main.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.option("--order-wait-s", default=10.0, show_default=True, type=click.FloatRange(0, 60),
              help="How long an upload waits for the one before it (devices keep two in flight).")
@click.option("--decodes", default=Limits.decodes, show_default=True, type=click.IntRange(1, 64),
              help="Batches read and decoded at once (each may take up to 128 MB).")
@click.option("--decode-wait-s", default=Limits.decode_wait_s, show_default=True, type=click.FloatRange(0, 300),
              help="How long an upload waits for a decode slot before 503 + Retry-After.")
@click.option("--body-timeout-s", default=Limits.body_timeout_s, show_default=True,
              type=click.FloatRange(0.1, 3600), help="How long an upload's body may take to arrive (then 408).")
@click.option("--auth-failures", default=Limits.auth_failures, show_default=True, type=click.IntRange(1, 10_000),
              help="Failed credentials per source address and per name within --auth-window-s before 429.")
@click.option("--auth-window-s", default=Limits.auth_window_s, show_default=True, type=click.FloatRange(1, 86_400),
              help="The window for --auth-failures.")
def serve(target: str, host: str, port: int, order_wait_s: float, decodes: int, decode_wait_s: float,
          body_timeout_s: float, auth_failures: int, auth_window_s: float) -> None:
    """Serve the ingest and read API until stopped (SIGINT/SIGTERM)."""
    limits = Limits(order_wait_s, decodes, decode_wait_s, body_timeout_s, auth_failures, auth_window_s)

    async def run() -> None:
        task = asyncio.ensure_future(app.serve(target, host, port, limits))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    _run(run(), uvloop.new_event_loop)  # about a tenth less CPU per upload than asyncio's own loop


@main.group()
def device() -> None:
    """Register, revoke and list devices."""


@device.command("add")
@db_option
@click.argument("device_id")
def device_add(target: str, device_id: str) -> None:
    """Register DEVICE_ID and print its credential (shown only this once)."""
    credential = _run(using(target, lambda db: registry.add(db, "dev", device_id, ACTOR)))
    click.echo(credential)
    click.echo(
        "Set it on the device as NATTERY_CLOUD_CREDENTIAL; it is stored hashed and cannot be shown again.",
        err=True,
    )


@device.command("revoke")
@db_option
@click.argument("device_id")
def device_revoke(target: str, device_id: str) -> None:
    """End DEVICE_ID's credential at once (its data stays)."""
    _run(using(target, lambda db: registry.revoke(db, "dev", device_id, ACTOR)))
    click.echo(f"device {device_id} revoked")


@device.command("list")
@db_option
def device_list(target: str) -> None:
    """Devices with last seen, sync lag and backlog."""
    for d in _run(using(target, queries.devices)):
        state = "revoked" if d["revoked"] else "online" if d["online"] else "offline"
        click.echo(f"{d['id']}\t{state}\tlast_seen={d['last_seen']}\tlag_s={d['sync_lag_s']}\tbacklog={d['backlog']}")


@main.group()
def operator() -> None:
    """Operator credentials for the read API."""


@operator.command("add")
@db_option
@click.argument("name")
def operator_add(target: str, name: str) -> None:
    """Create operator NAME and print its credential (shown only this once)."""
    click.echo(_run(using(target, lambda db: registry.add(db, "op", name, ACTOR))))


@operator.command("revoke")
@db_option
@click.argument("name")
def operator_revoke(target: str, name: str) -> None:
    """End operator NAME's credential."""
    _run(using(target, lambda db: registry.revoke(db, "op", name, ACTOR)))
    click.echo(f"operator {name} revoked")


main.add_command(edi_cli.group(db_option), "edi")
community_cli.register(main, db_option)
main.add_command(balance_cli.group(db_option), "balance")
