"""The ``nattery-fleet`` command: the fleet through Balena Cloud and the aggregator.

Each command opens the Balena SDK (``fleet/balena_api.py``) and, where it needs one, the aggregator
(its operator API for ``list``, its database for ``provision``, as ``nattery-cloud`` does), and
turns their errors into a one-line reason with a non-zero exit. Settings are checked by the
device's own loader (``device.config``) before anything is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
import requests

from cloud_sync import registry
from cloud_sync.audit import cli_actor
from cloud_sync.db import Database, DatabaseError, using
from device.config import ConfigError
from fleet import balena_api
from fleet.settings import checked_variable

AGGREGATOR_TIMEOUT_S = 30.0
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
ACTOR = cli_actor("nattery-fleet")  # who the aggregator's audit log names for provisioning


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--balena-fleet", "fleet_slug", envvar="NATTERY_FLEET", default=None,
              help="Balena fleet slug, e.g. acme/nattery (env NATTERY_FLEET); needed by list, pin "
                   "and config set --tag/--fleet.")
@click.option("--balena-api", envvar="NATTERY_FLEET_BALENA_API", default=None,
              help="Balena API base URL; default Balena Cloud (env NATTERY_FLEET_BALENA_API). "
                   "The API key is read from BALENA_API_KEY.")
@click.version_option(package_name="nattery")
@click.pass_context
def main(ctx: click.Context, fleet_slug: str | None, balena_api: str | None) -> None:
    """Operate the nattery fleet: devices, provisioning, configuration, releases."""
    ctx.obj = {"fleet": fleet_slug, "balena_api": balena_api}


def fleet_slug(ctx: click.Context) -> str:
    slug: str | None = ctx.obj["fleet"]
    if not slug:
        raise click.UsageError("this command needs the fleet: --balena-fleet SLUG or NATTERY_FLEET")
    return slug


@contextmanager
def balena(ctx: click.Context) -> Iterator[Any]:
    """The SDK for this invocation; its errors become a one-line reason."""
    from balena.exceptions import BalenaException

    try:
        with balena_api.connect(ctx.obj["balena_api"]) as sdk:
            yield sdk
    except BalenaException as exc:
        raise click.ClickException(f"balena: {getattr(exc, 'message', None) or exc}") from None
    except requests.RequestException as exc:
        raise click.ClickException(f"balena: {exc}") from None


def cloud_options(required: bool) -> Callable[[F], F]:
    """``--cloud`` and ``--cloud-credential``: the aggregator and an operator's credential. The
    action commands send what they did there, to the audit log (``POST /v1/audit``)."""
    why = "" if required else " Where the action is recorded in the audit log."

    def decorate(fn: F) -> F:
        fn = click.option("--cloud-credential", envvar="NATTERY_FLEET_CLOUD_CREDENTIAL", required=required,
                          help="Operator credential op.<name>.<secret> (env NATTERY_FLEET_CLOUD_CREDENTIAL).")(fn)
        return click.option("--cloud", envvar="NATTERY_FLEET_CLOUD", required=required,
                            help=f"Aggregator base URL (env NATTERY_FLEET_CLOUD).{why}")(fn)

    return decorate


@main.command("list")
@cloud_options(required=True)
@click.pass_context
def list_devices(ctx: click.Context, cloud: str, cloud_credential: str) -> None:
    """The fleet's devices: online in Balena, online and syncing at the aggregator, SoC, what the
    battery saved this month (EUR, UTC month, from the settlements it synced), open alerts.

    A Balena device is matched with the aggregator's device of the same name (``provision``
    names it so). One tab-separated line per device, with a header.
    """
    slug = fleet_slug(ctx)
    seen = _aggregator_devices(cloud, cloud_credential)
    with balena(ctx) as sdk:
        devices = sdk.models.device.get_all_by_application(slug)
    click.echo("device\tbalena\tcloud\tsync_lag_s\tlast_telemetry\tsoc_pct\tsaved_month_eur\talerts")
    for device in devices:
        name = device["device_name"]
        cloud_view = seen.get(name)
        telemetry = (cloud_view or {}).get("latest_telemetry") or {}
        cells = [
            name,
            "online" if device.get("is_online") else "offline",
            "not registered" if cloud_view is None else "revoked" if cloud_view["revoked"]
            else "online" if cloud_view["online"] else "offline",
            _cell((cloud_view or {}).get("sync_lag_s")),
            _cell(telemetry.get("time")),
            _cell((telemetry.get("roles") or {}).get("soc_pct")),
            _cell((cloud_view or {}).get("savings_month_eur")),
            ",".join(a["alert"] for a in (cloud_view or {}).get("alerts", [])) or "-",
        ]
        click.echo("\t".join(cells))


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _aggregator_devices(url: str, credential: str) -> dict[str, dict[str, Any]]:
    try:
        response = requests.get(f"{url.rstrip('/')}/v1/devices", timeout=AGGREGATOR_TIMEOUT_S,
                                headers={"Authorization": f"Bearer {credential}"})
    except requests.RequestException as exc:
        raise click.ClickException(f"aggregator {url}: {exc}") from None
    if response.status_code != 200:
        raise click.ClickException(f"aggregator {url}: HTTP {response.status_code}: {response.text[:200]}")
    return {d["id"]: d for d in response.json()["devices"]}


@contextmanager
def audited(cloud: str | None, credential: str | None, action: str, target: str,
            detail: dict[str, Any] | None = None) -> Iterator[None]:
    """Record what the block did (``ok`` or ``failed: <reason>``) in the aggregator's audit log.
    Without ``--cloud``/``--cloud-credential`` the operator is told it went unrecorded."""
    try:
        yield
    except click.ClickException as exc:
        _record(cloud, credential, action, target, f"failed: {exc.format_message()}", detail)
        raise
    except Exception as exc:
        _record(cloud, credential, action, target, f"failed: {type(exc).__name__}: {exc}", detail)
        raise
    _record(cloud, credential, action, target, "ok", detail, must=True)


def _record(cloud: str | None, credential: str | None, action: str, target: str, outcome: str,
            detail: dict[str, Any] | None, must: bool = False) -> None:
    if not cloud or not credential:
        click.echo(f"{action} {target}: not recorded in the aggregator's audit log "
                   "(give --cloud and --cloud-credential, or NATTERY_FLEET_CLOUD and NATTERY_FLEET_CLOUD_CREDENTIAL)",
                   err=True)
        return
    problem = None
    try:
        response = requests.post(f"{cloud.rstrip('/')}/v1/audit", timeout=AGGREGATOR_TIMEOUT_S,
                                 json={"action": action, "target": target, "outcome": outcome, "detail": detail},
                                 headers={"Authorization": f"Bearer {credential}"})
        if response.status_code != 201:
            problem = f"HTTP {response.status_code}: {response.text[:200]}"
    except requests.RequestException as exc:
        problem = str(exc)
    if problem is not None:
        message = f"{action} {target}: {outcome}, but the aggregator {cloud} did not record it ({problem})"
        if must:
            raise click.ClickException(message)
        click.echo(message, err=True)


@main.command()
@click.option("--db", "target", envvar="NATTERY_CLOUD_DB", required=True,
              help="The aggregator's database: SQLite file or postgresql:// URL (env NATTERY_CLOUD_DB).")
@click.argument("uuid")
@click.argument("device_id")
@click.pass_context
def provision(ctx: click.Context, target: str, uuid: str, device_id: str) -> None:
    """Register Balena device UUID at the aggregator as DEVICE_ID and hand it its credential.

    The credential goes only into the device variable NATTERY_CLOUD_CREDENTIAL; the device is
    renamed DEVICE_ID and gets NATTERY_DEVICE_ID. The device is looked up first, so an unknown
    UUID registers nothing.
    """
    with balena(ctx) as sdk:
        sdk.models.device.get(uuid)
        credential = _in_registry(target, lambda db: registry.add(db, "dev", device_id, ACTOR))
        try:
            sdk.models.device.env_var.set(uuid, "NATTERY_CLOUD_CREDENTIAL", credential)
        except Exception:
            # The credential was shown to nobody and is now lost: end it, so no copy can work.
            _in_registry(target, lambda db: registry.revoke(db, "dev", device_id, ACTOR))
            click.echo(f"{device_id}: its credential could not be stored on {uuid}, so its registration "
                       "is revoked; provision the device under another id", err=True)
            raise
        sdk.models.device.env_var.set(uuid, "NATTERY_DEVICE_ID", device_id)
        sdk.models.device.rename(uuid, device_id)
    click.echo(f"{device_id}: registered at the aggregator; credential stored on {uuid}")


def _in_registry(target: str, action: Callable[[Database], Awaitable[T]]) -> T:
    """Run one registry action on the aggregator's database (as ``nattery-cloud`` does)."""
    try:
        return asyncio.run(using(target, action))
    except (DatabaseError, registry.RegistryError, OSError) as exc:
        raise click.ClickException(f"aggregator: {exc}") from None


@main.group()
def config() -> None:
    """Device settings as Balena variables (NATTERY_<SECTION>_<KEY>)."""


@config.command("set")
@click.argument("key")
@click.argument("value")
@click.option("--device", "uuid", help="One device (Balena UUID).")
@click.option("--tag", help="Every device with this tag, as KEY=VALUE.")
@click.option("--fleet", "whole_fleet", is_flag=True, help="The whole fleet (a fleet variable).")
@cloud_options(required=False)
@click.pass_context
def config_set(ctx: click.Context, key: str, value: str, uuid: str | None, tag: str | None,
               whole_fleet: bool, cloud: str | None, cloud_credential: str | None) -> None:
    """Set KEY (``inverter.poll_interval_s`` or ``NATTERY_INVERTER_POLL_INTERVAL_S``) to VALUE.

    VALUE is checked by the device's own configuration loader first: a wrong one is refused
    with the device's message and nothing is sent. For --tag the matching devices are found
    before the first variable is written.
    """
    if sum(x is not None and x is not False for x in (uuid, tag, whole_fleet)) != 1:
        raise click.UsageError("give exactly one of --device, --tag and --fleet")
    try:
        name = checked_variable(key, value)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    slug = None if uuid else fleet_slug(ctx)
    scope = f"device {uuid}" if uuid else f"tag {tag} of {slug}" if tag else f"fleet {slug}"
    with audited(cloud, cloud_credential, "config_set", scope, {name: value}), balena(ctx) as sdk:
        if whole_fleet and slug:
            sdk.models.application.env_var.set(slug, name, value)
            click.echo(f"{name}={value} on fleet {slug}")
            return
        targets = [uuid] if uuid else _tagged(sdk, slug or "", tag or "")
        for target in targets:
            sdk.models.device.env_var.set(target, name, value)
            click.echo(f"{name}={value} on {target}")


def _tagged(sdk: Any, fleet_slug: str, tag: str) -> list[str]:
    key, sep, value = tag.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{tag!r}: expected KEY=VALUE", param_hint="--tag")
    ids = {t["device"]["__id"] for t in sdk.models.device.tags.get_all_by_application(fleet_slug)
           if t["tag_key"] == key and t["value"] == value}
    if not ids:
        raise click.ClickException(f"no device of {fleet_slug} has tag {key}={value}; nothing set")
    return [d["uuid"] for d in sdk.models.device.get_all_by_application(fleet_slug) if d["id"] in ids]


@main.command()
@click.argument("release")
@click.option("--device", "uuid", help="Pin one device (Balena UUID); default: the whole fleet.")
@cloud_options(required=False)
@click.pass_context
def pin(ctx: click.Context, release: str, uuid: str | None, cloud: str | None, cloud_credential: str | None) -> None:
    """Pin the fleet (or one device) to RELEASE, a release's full commit hash."""
    slug = None if uuid else fleet_slug(ctx)
    target = f"device {uuid}" if uuid else f"fleet {slug}"
    with audited(cloud, cloud_credential, "pin", target, {"release": release}), balena(ctx) as sdk:
        if uuid:
            sdk.models.device.pin_to_release(uuid, release)
        else:
            sdk.models.application.pin_to_release(slug, release)
    click.echo(f"{uuid or slug} pinned to {release}")


@main.command()
@click.argument("uuid")
@cloud_options(required=False)
@click.pass_context
def identify(ctx: click.Context, uuid: str, cloud: str | None, cloud_credential: str | None) -> None:
    """Blink device UUID's LED, to find it on site."""
    with audited(cloud, cloud_credential, "identify", f"device {uuid}"), balena(ctx) as sdk:
        sdk.models.device.identify(uuid)
    click.echo(f"{uuid} blinking")


@main.command()
@click.argument("uuid")
@click.argument("service", type=click.Choice(["mqtt", "bridge", "app"]))
@cloud_options(required=False)
@click.pass_context
def restart(ctx: click.Context, uuid: str, service: str, cloud: str | None, cloud_credential: str | None) -> None:
    """Restart SERVICE on device UUID (the bridge's update lock is respected by the supervisor)."""
    with audited(cloud, cloud_credential, "restart", f"device {uuid}", {"service": service}), balena(ctx) as sdk:
        details = sdk.models.device.get_with_service_details(uuid)
        running = details["current_services"].get(service) or []
        if not running:
            raise click.ClickException(f"{uuid}: service {service!r} is not installed; "
                                       f"installed: {', '.join(details['current_services']) or 'none'}")
        sdk.models.device.restart_service(uuid, running[0]["image_id"])
    click.echo(f"{uuid}: {service} restarting")
