"""Register maps: one YAML file per inverter family, loaded strictly into the frozen dataclasses of
:mod:`~device.modbus.mapmodel`.

A map declares the wire protocol, the registers (with datasheet name and unit), which registers
carry the semantic roles every other module uses (``soc_pct``, ``battery_w`` …, already in our
units and signs), and the semantic controls (``self_consumption``, ``charge(power_w)`` …) as the
writes that family needs. Nothing about a family lives in code. Loading refuses any map with an
unknown key, type or register, overlapping registers, a control writing a read-only register, a
control value its register cannot hold, or two controls the inverter could not tell apart; every
error names the file and the entry.

Two shapes real firmware needs beyond one-register-per-value:

- A 32-bit value whose words are not adjacent (Deye keeps "total grid buy" at 78 low / 80 high,
  grid frequency at 79) is declared with ``addresses: [78, 80]`` instead of ``address``; the
  words are listed in ascending address order and ``word_order`` says which one is high, exactly
  as for adjacent words. :attr:`Register.addresses` gives every word's address, in that order.
- A role the family has no register for is a signed sum: ``load_w: {sum: [inverter_power,
  {register: meter_power, sign: -1}]}`` (Huawei reports no house load, only inverter output and
  the grid meter).
- A value scaled by another register (``scale_factor: w_sf``, SunSpec's ``*_SF``), raw values that
  mean "no reading" (``invalid``) and readings whose sign the firmware gets wrong (``absolute``).
- SunSpec points by model and offset (``model``, ``model_offset``) on the chain of a ``sunspec``
  section; :mod:`~device.modbus.sunspec` places them on the device's own chain at run time.
- More than one Modbus device behind the one link: ``protocol.devices: {meter: 200}`` names
  further unit ids, a register or identity check says ``device: meter`` (default: the device at
  ``protocol.unit_id``), and ``sunspec.devices: {meter: {models: [...]}}`` gives that device's
  own chain (Fronius GEN24's grid meter answers at unit 200 as a SunSpec device of its own).
  Addresses, overlaps and blocks are per device; ``unreadable`` ranges are the main device's.

Every field added to a dataclass in :mod:`~device.modbus.mapmodel` needs its check in the parser
here: review the two side by side, that is what keeps a broken map from reaching an inverter.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

from common.numbers import finite_float
from device.config import read_yaml
from device.modbus.blocks import BlockError, plan_blocks
from device.modbus.codec import EncodeError, encode_write
from device.modbus.mapmodel import (
    ACCESS, MAIN, MAX_BLOCK, MODES, REQUIRED_ROLES, ROLE_UNITS, SELF_CONSUMPTION, TABLES, TYPES, WORD_ORDERS, Control, IdentityCheck, ParamSpec,
    Protocol, Register, RegisterMap, Requirement, RoleSpec, SunSpecLayout, WriteSpec,
)
from device.modbus.sunspec import END as SUNSPEC_END
from device.modbus.sunspec import rebase
from device.resources import MAPS_DIR


class MapError(ValueError):
    """A register map is invalid; the message names the file, the entry and the reason."""


def available_maps() -> dict[str, Path]:
    """Shipped maps by family name."""
    return {p.stem: p for p in sorted(MAPS_DIR.glob("*.yaml"))}


def load_map(name_or_path: str | Path) -> RegisterMap:
    """Load a shipped map by family name, or any map file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        maps = available_maps()
        if str(name_or_path) not in maps:
            raise MapError(
                f"unknown inverter map {str(name_or_path)!r}; shipped maps: {', '.join(maps)}"
            )
        path = maps[str(name_or_path)]
    return _Parser(path).parse(read_yaml(path, MapError))


class _Parser:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, reason: str) -> MapError:
        return MapError(f"{self.path}: {where}: {reason}")

    def mapping(self, raw: Any, where: str, allowed: set[str], required: AbstractSet[str] = frozenset()) -> dict:
        if not isinstance(raw, Mapping):
            raise self.fail(where, f"expected a mapping, got {raw!r}")
        for key in raw:
            if key not in allowed:
                raise self.fail(where, f"unknown key {key!r}; allowed: {', '.join(sorted(allowed))}")
        for key in sorted(required - set(raw)):
            raise self.fail(where, f"missing key {key!r}")
        return dict(raw)

    def finite(self, where: str, data: Mapping[str, Any], keys: tuple[str, ...]) -> None:
        """Numbers the map gives (scale, offset, limits, written values) must be finite numbers."""
        for key in keys:
            value = data.get(key)
            if key in data and value is not None and finite_float(value) is None:
                raise self.fail(where, f"{key} {value!r} must be a finite number")

    def parse(self, raw: Any) -> RegisterMap:
        top = self.mapping(
            raw,
            "map",
            {"family", "name", "products", "sources", "protocol", "registers", "roles",
             "controls", "unreadable", "identity", "sunspec"},
            {"family", "name", "protocol", "registers", "roles", "controls"},
        )
        protocol = self.protocol(top["protocol"])
        layouts = self.sunspec(top["sunspec"], protocol) if "sunspec" in top else {}
        registers = self.registers(top["registers"], protocol, layouts)
        unreadable = self.unreadable(top.get("unreadable") or {}, registers)
        roles = self.roles(top["roles"], registers)
        controls = self.controls(top["controls"], registers, protocol.control_timeout_s)
        identity = self.identity(top.get("identity") or [], registers, unreadable, protocol, layouts)
        regmap = RegisterMap(
            family=str(top["family"]),
            name=str(top["name"]),
            path=self.path,
            protocol=protocol,
            registers=registers,
            roles=roles,
            controls=controls,
            unreadable=unreadable,
            products=tuple(top.get("products") or ()),
            sources=tuple(top.get("sources") or ()),
            identity=identity,
            sunspec=layouts,
        )
        for layout in layouts.values():  # the marker, model headers and end marker prove the family
            regmap = rebase(regmap, layout)
        self.check_plannable(regmap)
        return regmap

    def sunspec(self, raw: Any, protocol: Protocol) -> dict[str, SunSpecLayout]:
        """``bases`` (where the ``SunS`` marker may be, tried in order), ``models``: the chain of
        (id, length) as the map's nominal device lays it out from the first base, and ``devices``:
        the chain of each further device of ``protocol.devices`` that is a SunSpec device too."""
        data = self.mapping(raw, "sunspec", {"bases", "models", "devices"}, {"bases", "models"})
        bases = data["bases"]
        if not isinstance(bases, list) or not bases or not all(
                isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 0xFFFF - 4 for b in bases):
            raise self.fail("sunspec.bases", f"expected a non-empty list of addresses, got {bases!r}")
        layouts = {MAIN: self.chain("sunspec", data["models"], tuple(bases), MAIN)}
        devices = self.mapping(data.get("devices") or {}, "sunspec.devices", {name for name, _ in protocol.devices})
        for name, spec in devices.items():
            spec = self.mapping(spec, f"sunspec.devices.{name}", {"models"}, {"models"})
            layouts[name] = self.chain(f"sunspec.devices.{name}", spec["models"], tuple(bases), name)
        return layouts

    def chain(self, where: str, raw: Any, bases: tuple[int, ...], device: str) -> SunSpecLayout:
        chain: list[tuple[int, int]] = []
        for i, item in enumerate(raw if isinstance(raw, list) else [None]):
            model = self.mapping(item, f"{where}.models[{i}]", {"id", "length"}, {"id", "length"})
            mid, length = model["id"], model["length"]
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (mid, length)) or not (
                    1 <= mid < SUNSPEC_END and 1 <= length <= 0xFFFF):
                raise self.fail(f"{where}.models[{i}]", f"id {mid!r} must be 1..65534, length {length!r} 1..65535")
            if mid in [m for m, _ in chain]:
                raise self.fail(f"{where}.models[{i}]", f"model {mid} listed twice")
            chain.append((mid, length))
        if not chain:
            raise self.fail(f"{where}.models", "expected a non-empty list of {id, length}")
        layout = SunSpecLayout(bases, tuple(chain), bases[0], device=device)
        if layout.end + 1 > 0xFFFF:
            raise self.fail(f"{where}.models", f"the chain from {bases[0]} runs past address 65535")
        return layout

    def check_plannable(self, regmap: RegisterMap) -> None:
        """Every readable register must fit some block (e.g. interleaved split words might not)."""
        try:
            plan_blocks(regmap)
        except BlockError as exc:
            raise self.fail("registers", str(exc)) from None

    def protocol(self, raw: Any) -> Protocol:
        data = self.mapping(raw, "protocol", {
            "baudrate", "parity", "bytesize", "stopbits", "unit_id", "word_order", "gap_ms",
            "timeout_ms", "max_block", "max_gap", "connect_pause_ms", "devices", "control_timeout_s"})
        checks: dict[str, tuple[Any, ...]] = {
            "baudrate": (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200),
            "parity": ("N", "E", "O"),
            "bytesize": (7, 8),
            "stopbits": (1, 2),
            "word_order": WORD_ORDERS,
        }
        for key, allowed in checks.items():
            if key in data and data[key] not in allowed:
                raise self.fail(f"protocol.{key}", f"got {data[key]!r}; allowed: {allowed}")
        ranges = {"unit_id": (1, 247), "gap_ms": (0, 2000), "timeout_ms": (50, 30000),
                  "max_block": (1, MAX_BLOCK), "max_gap": (0, MAX_BLOCK), "connect_pause_ms": (0, 10000),
                  "control_timeout_s": (2, 86400)}
        for key, (lo, hi) in ranges.items():
            if key in data and (isinstance(data[key], bool) or not isinstance(data[key], (int, float))
                                or not lo <= data[key] <= hi):
                raise self.fail(f"protocol.{key}", f"got {data[key]!r}; allowed: {lo} to {hi}")
        if "devices" in data:
            data["devices"] = self.devices(data["devices"], data.get("unit_id", Protocol.unit_id))
        if "connect_pause_ms" in data:
            data["connect_pause_s"] = data.pop("connect_pause_ms") / 1000
        if "gap_ms" in data:
            data["gap_s"] = data.pop("gap_ms") / 1000
        if "timeout_ms" in data:
            data["timeout_s"] = data.pop("timeout_ms") / 1000
        return Protocol(**data)

    def devices(self, raw: Any, unit_id: int) -> tuple[tuple[str, int], ...]:
        """Further Modbus devices behind the link: name -> unit id, each its own unit id."""
        if not isinstance(raw, Mapping) or not raw:
            raise self.fail("protocol.devices", f"expected a mapping of device name to unit id, got {raw!r}")
        units = [unit_id]
        for name, unit in raw.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise self.fail("protocol.devices", f"device name {name!r} must be a word (letters, digits, _)")
            if isinstance(unit, bool) or not isinstance(unit, int) or not 1 <= unit <= 247 or unit in units:
                raise self.fail(f"protocol.devices.{name}", f"unit id {unit!r} must be 1..247 and differ "
                                                            f"from the map's other unit ids {units}")
            units.append(unit)
        return tuple((str(name), int(unit)) for name, unit in raw.items())

    def device(self, where: str, data: dict, protocol: Protocol) -> None:
        """``device``: a name of ``protocol.devices`` (absent: the device at ``protocol.unit_id``)."""
        names = [name for name, _ in protocol.devices]
        if "device" in data and data["device"] not in names:
            raise self.fail(where, f"device {data['device']!r} is not in protocol.devices "
                                   f"({', '.join(names) or 'none declared'})")
        data.setdefault("device", MAIN)

    def registers(self, raw: Any, protocol: Protocol, layouts: Mapping[str, SunSpecLayout]) -> dict[str, Register]:
        if not isinstance(raw, list) or not raw:
            raise self.fail("registers", "expected a non-empty list")
        result: dict[str, Register] = {}
        for i, item in enumerate(raw):
            where = f"registers[{item.get('name', i) if isinstance(item, Mapping) else i}]"
            data = self.mapping(item, where, {
                "name", "address", "addresses", "table", "type", "scale", "offset", "unit", "access",
                "word_order", "description", "min", "max", "enum", "invalid", "absolute", "scale_factor",
                "model", "model_offset", "device"}, {"name", "table", "type"})
            name = data["name"]
            if not isinstance(name, str) or not name:
                raise self.fail(where, f"name must be a non-empty string, got {name!r}")
            if name in result:
                raise self.fail(where, "duplicate register name")
            if data["type"] not in TYPES:
                raise self.fail(where, f"unknown type {data['type']!r}; allowed: {', '.join(TYPES)}")
            if data["table"] not in TABLES:
                raise self.fail(where, f"unknown table {data['table']!r}; allowed: {', '.join(TABLES)}")
            if data.get("access", "r") not in ACCESS:
                raise self.fail(where, f"unknown access {data['access']!r}; allowed: {', '.join(ACCESS)}")
            if data.get("access") in ("w", "rw") and data["table"] == "input":
                raise self.fail(where, "input registers cannot be written")
            self.device(where, data, protocol)
            if "model" in data or "model_offset" in data:
                self.point(where, data, layouts.get(data["device"]), TYPES.get(data["type"], 1))
            self.address(where, data)
            self.finite(where, data, ("scale", "offset", "min", "max"))
            self.reading_rules(where, data)
            if "scale" in data and (not isinstance(data["scale"], (int, float)) or data["scale"] == 0):
                raise self.fail(where, f"scale {data['scale']!r} must be a non-zero number")
            data.setdefault("word_order", protocol.word_order)
            if data["word_order"] not in WORD_ORDERS:
                raise self.fail(where, f"unknown word_order {data['word_order']!r}")
            data["enum"] = {int(k): str(v) for k, v in (data.get("enum") or {}).items()}
            register = Register(**data)
            if register.span > protocol.max_block:
                raise self.fail(where, f"spans {register.span} addresses; protocol.max_block is "
                                       f"{protocol.max_block}, so no single read can return it")
            self.check_overlap(where, register, result.values())
            result[name] = register
        for register in result.values():
            self.check_scale_factor(f"registers[{register.name}]", register, result)
        return result

    def point(self, where: str, data: dict, layout: SunSpecLayout | None, size: int) -> None:
        """A SunSpec point of ``size`` words: ``model`` and ``model_offset`` (0 is the model's ID)
        give its address."""
        if layout is None:
            raise self.fail(where, "'model' and 'model_offset' need a 'sunspec' chain for its device "
                                   f"({data['device'] or 'the main one'})")
        if "address" in data or "addresses" in data:
            raise self.fail(where, "a SunSpec point takes 'model' and 'model_offset', not an address")
        model, offset = data.pop("model", None), data.pop("model_offset", None)
        lengths = dict(layout.chain)
        if model not in lengths:
            raise self.fail(where, f"model {model!r} is not in sunspec.models ({', '.join(map(str, lengths))})")
        if not isinstance(offset, int) or isinstance(offset, bool) or not 2 <= offset <= lengths[model] + 2 - size:
            raise self.fail(where, f"model_offset {offset!r} must be 2..{lengths[model] + 2 - size} "
                                   f"(model {model} has {lengths[model]} registers after its ID and length)")
        data.update(model=model, model_offset=offset, address=layout.starts()[model] + offset)

    def reading_rules(self, where: str, data: dict) -> None:
        """``invalid`` markers (raw words), ``absolute`` and ``scale_factor`` (a register name)."""
        invalid = data.get("invalid", [])
        invalid = [invalid] if isinstance(invalid, int) and not isinstance(invalid, bool) else invalid
        limit = 1 << (16 * TYPES[data["type"]])
        if not isinstance(invalid, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v < limit for v in invalid):
            raise self.fail(where, f"invalid {data.get('invalid')!r} must list raw word values 0..{limit - 1}")
        data["invalid"] = tuple(invalid)
        if not isinstance(data.get("absolute", False), bool):
            raise self.fail(where, f"absolute {data['absolute']!r} must be true or false")
        if "scale_factor" in data and not isinstance(data["scale_factor"], str):
            raise self.fail(where, f"scale_factor {data['scale_factor']!r} must name a register")
        if data.get("access", "r") != "r" and (data.get("absolute") or invalid):
            raise self.fail(where, "a writable register cannot be absolute or have invalid markers "
                                   "(the value written must read back as written)")

    def check_scale_factor(self, where: str, register: Register, registers: Mapping[str, Register]) -> None:
        if register.scale_factor is None:
            return
        factor = registers.get(register.scale_factor)
        if factor is None:
            raise self.fail(where, f"scale_factor {register.scale_factor!r} is not a register of this map")
        if (factor.type != "S16" or factor.table != register.table or not factor.readable or factor.scale != 1
                or factor.offset != 0 or factor.scale_factor is not None or factor.device != register.device):
            raise self.fail(where, f"scale_factor {factor.name!r} must be a readable, unscaled S16 register "
                                   f"of the {register.table} table of the same device")
        if register.type == "F32":
            raise self.fail(where, "an F32 register carries its own exponent: no scale_factor")

    def address(self, where: str, data: dict) -> None:
        """Exactly one of ``address`` (adjacent words) or ``addresses`` (one per word, ascending)."""
        if ("address" in data) == ("addresses" in data):
            raise self.fail(where, "give exactly one of 'address' or 'addresses'")
        addresses = data.pop("addresses", None)
        size = TYPES[data["type"]]
        if addresses is not None:
            if (not isinstance(addresses, list) or len(addresses) != size
                    or sorted(set(addresses)) != addresses):
                raise self.fail(where, f"addresses {addresses!r} must list the {size} word addresses "
                                       f"of a {data['type']} in ascending order")
            if data.get("access", "r") != "r":
                raise self.fail(where, "a register with split words must be read-only "
                                       "(no single write could change both words at once)")
            data["address"], data["word_addresses"] = addresses[0], tuple(addresses)
        for address in addresses or [data["address"]]:
            if isinstance(address, bool) or not isinstance(address, int) or not 0 <= address <= 0xFFFF:
                raise self.fail(where, f"address {address!r} is not 0..65535")
        if data["address"] + size - 1 > 0xFFFF:
            raise self.fail(where, f"a {data['type']} at {data['address']} runs past address 65535")

    def check_overlap(self, where: str, new: Register, existing: Any) -> None:
        for other in existing:
            same = other.table == new.table and other.device == new.device
            shared = sorted(set(new.addresses) & set(other.addresses)) if same else []
            if shared:
                raise self.fail(
                    where,
                    f"{new.table} address {shared[0]} is also a word of {other.name} "
                    f"(addresses {', '.join(map(str, other.addresses))})",
                )

    def unreadable(self, raw: Any, registers: Mapping[str, Register]) -> dict[str, tuple[tuple[int, int], ...]]:
        data = self.mapping(raw, "unreadable", set(TABLES))
        result: dict[str, tuple[tuple[int, int], ...]] = {}
        for table, ranges in data.items():
            spans = []
            for span in ranges or ():
                if not (isinstance(span, list) and len(span) == 2 and all(isinstance(a, int) for a in span)
                        and 0 <= span[0] <= span[1] <= 0xFFFF):
                    raise self.fail(f"unreadable.{table}", f"expected [first, last] addresses, got {span!r}")
                spans.append((int(span[0]), int(span[1])))
            result[table] = tuple(spans)
        main = [r for r in registers.values() if r.device == MAIN]  # the ranges are the main device's
        write_only = {(r.table, a): r.name for r in main if not r.readable for a in r.addresses}
        for reg in main:
            if not reg.readable:
                continue
            # a read must cover the whole span, the unused addresses between split words included
            for lo, hi in result.get(reg.table, ()):
                if reg.address <= hi and lo < reg.end:
                    raise self.fail(f"registers[{reg.name}]", f"readable but inside unreadable {lo}..{hi}")
            for address in range(reg.address, reg.end):
                if (reg.table, address) in write_only:
                    raise self.fail(f"registers[{reg.name}]", f"its words span address {address} of the "
                                                              f"write-only {write_only[reg.table, address]}")
        return result

    def identity(self, raw: Any, registers: Mapping[str, Register], unreadable: Mapping[str, tuple[tuple[int, int], ...]],
                 protocol: Protocol, layouts: Mapping[str, SunSpecLayout]) -> tuple[IdentityCheck, ...]:
        """The words that prove the family: a code (``values``) or a text (``prefixes``), at an
        address or, on a SunSpec device, at a point of a model (``model``, ``model_offset``:
        SunSpec common model 1's manufacturer ``Mn`` at offset 2)."""
        if not isinstance(raw, list):
            raise self.fail("identity", f"expected a list, got {raw!r}")
        checks = []
        for i, item in enumerate(raw):
            where = f"identity[{item.get('name', i) if isinstance(item, Mapping) else i}]"
            data = self.mapping(item, where, {"name", "table", "address", "words", "values", "prefixes",
                                              "contains", "known", "description", "device", "model", "model_offset"},
                                {"name", "table", "words"})
            data.pop("description", None)
            self.device(where, data, protocol)
            if "model" in data or "model_offset" in data:
                self.point(where, data, layouts.get(data["device"]), data["words"] if isinstance(data["words"], int) else 1)
            elif "address" not in data:
                raise self.fail(where, "missing key 'address' (or 'model' and 'model_offset' on a SunSpec device)")
            if data["table"] not in TABLES:
                raise self.fail(where, f"unknown table {data['table']!r}; allowed: {', '.join(TABLES)}")
            words, address = data["words"], data["address"]
            if isinstance(words, bool) or not isinstance(words, int) or not 1 <= words <= 32:
                raise self.fail(where, f"words {words!r} must be 1 to 32")
            if isinstance(address, bool) or not isinstance(address, int) or not 0 <= address <= 0xFFFF - words + 1:
                raise self.fail(where, f"address {address!r} is not 0..65535 (with its {words} words)")
            if sum(key in data for key in ("values", "prefixes", "contains")) != 1:
                raise self.fail(where, "give exactly one of 'values' (codes), 'prefixes' or 'contains' (a text)")
            limit = 1 << (16 * words)
            for key in ("values", "known") if "values" in data else ("known",):
                codes = data.get(key) or {}
                if not isinstance(codes, Mapping) or (key == "values" and not codes) or not all(
                        isinstance(k, int) and not isinstance(k, bool) and 0 <= k < limit for k in codes):
                    raise self.fail(where, f"{key} must map codes 0..{limit - 1} to what they mean, got {codes!r}")
                data[key] = {int(k): str(v) for k, v in codes.items()}
            data.setdefault("values", {})
            if set(data["values"]) & set(data["known"]):
                raise self.fail(where, f"codes {sorted(set(data['values']) & set(data['known']))} are both "
                                       "accepted and known as another family")
            for key, room in (("prefixes", 2 * words), ("contains", max(2 * words - 5, 0))):  # 5: the sample's lead
                texts = data.get(key, [])
                if key in data and (not isinstance(texts, list) or not texts or not all(
                        isinstance(p, str) and p.isascii() and 0 < len(p) <= room for p in texts)):
                    raise self.fail(where, f"{key} must be a non-empty list of ASCII texts of at most "
                                           f"{room} characters, got {texts!r}")
                data[key] = tuple(texts)
            check = IdentityCheck(**data)
            span = range(address, address + words)
            for lo, hi in unreadable.get(check.table, ()) if check.device == MAIN else ():
                if address <= hi and lo < address + words:
                    raise self.fail(where, f"inside unreadable {lo}..{hi}")
            for reg in registers.values():
                if (reg.table, reg.device) == (check.table, check.device) and not reg.readable and \
                        set(reg.addresses) & set(span):
                    raise self.fail(where, f"its words overlap the write-only {reg.name}")
            checks.append(check)
        return tuple(checks)

    def roles(self, raw: Any, registers: Mapping[str, Register]) -> dict[str, RoleSpec]:
        data = self.mapping(raw, "roles", set(ROLE_UNITS), set(REQUIRED_ROLES))
        result = {}
        for role, spec in data.items():
            where = f"roles.{role}"
            if isinstance(spec, str):
                spec = {"sum": [spec]}
            elif isinstance(spec, Mapping) and "register" in spec:
                spec = {"sum": [spec["register"]], **{k: v for k, v in spec.items() if k != "register"}}
            spec = self.mapping(spec, where, {"sum", "sign"}, {"sum"})
            sign = self.sign(where, spec.get("sign", 1))
            if not isinstance(spec["sum"], list) or not spec["sum"]:
                raise self.fail(where, f"sum must be a non-empty list, got {spec['sum']!r}")
            names, signs = [], []
            for term in spec["sum"]:
                if isinstance(term, Mapping):
                    term = self.mapping(term, f"{where}.sum", {"register", "sign"}, {"register"})
                    name, term_sign = term["register"], self.sign(f"{where}.sum", term.get("sign", 1))
                else:
                    name, term_sign = term, 1
                reg = registers.get(name)
                if reg is None:
                    raise self.fail(where, f"unknown register {name!r}")
                if not reg.readable:
                    raise self.fail(where, f"register {name!r} is not readable")
                unit = ROLE_UNITS[role]
                if unit is not None and reg.unit != unit:
                    raise self.fail(where, f"register {name!r} has unit {reg.unit!r}; {role} needs {unit!r}")
                names.append(name)
                signs.append(term_sign)
            result[role] = RoleSpec(tuple(names), sign, tuple(signs) if -1 in signs else ())
        return result

    def sign(self, where: str, value: Any) -> int:
        if value not in (1, -1) or isinstance(value, bool):
            raise self.fail(where, f"sign must be 1 or -1, got {value!r}")
        return int(value)

    def controls(self, raw: Any, registers: Mapping[str, Register], timeout_s: float | None) -> dict[str, Control]:
        data = self.mapping(raw, "controls", set(MODES), set(MODES))
        result: dict[str, Control] = {}
        for mode, spec in data.items():
            where = f"controls.{mode}"
            spec = self.mapping(spec, where, {"params", "writes", "requires", "refresh_s"}, {"writes"})
            refresh_s = self.refresh(where, mode, spec.get("refresh_s"), timeout_s)
            params = {}
            for pname, pspec in (spec.get("params") or {}).items():
                pwhere = f"{where}.params.{pname}"
                p = self.mapping(pspec, pwhere, {"min", "max", "unit"}, {"min", "max"})
                self.finite(pwhere, p, ("min", "max"))
                if not all(isinstance(p[k], (int, float)) for k in ("min", "max")) or p["min"] > p["max"]:
                    raise self.fail(pwhere, f"min {p['min']!r} and max {p['max']!r} must be numbers, min <= max")
                params[pname] = ParamSpec(**p)
            writes = [self.write(f"{where}.writes[{i}]", w, registers, params)
                      for i, w in enumerate(spec["writes"] or ())]
            if not writes:
                raise self.fail(where, "needs at least one write")
            requires = tuple(self.requirement(f"{where}.requires[{i}]", r, registers)
                             for i, r in enumerate(spec.get("requires") or ()))
            result[mode] = Control(mode, params, tuple(writes), requires, refresh_s)
        self.check_distinguishable(result)
        return result

    def refresh(self, where: str, mode: str, raw: Any, timeout_s: float | None) -> float | None:
        """``refresh_s``: how often the bridge writes a forced control again while it is active;
        needed, and shorter than the timeout, where the inverter forgets it (``control_timeout_s``)."""
        if raw is None:
            if timeout_s is not None and mode != SELF_CONSUMPTION:
                raise self.fail(where, f"the inverter forgets a forced control after protocol.control_timeout_s "
                                       f"{timeout_s:g} s: give refresh_s below it")
            return None
        if mode == SELF_CONSUMPTION:
            raise self.fail(f"{where}.refresh_s", "self_consumption is the inverter's own mode: nothing to refresh")
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 1 <= raw <= 3600:
            raise self.fail(f"{where}.refresh_s", f"got {raw!r}; allowed: 1 to 3600 (seconds)")
        if timeout_s is not None and raw >= timeout_s:
            raise self.fail(f"{where}.refresh_s", f"{raw:g} s is not below protocol.control_timeout_s "
                                                  f"{timeout_s:g} s: the control would lapse first")
        return float(raw)

    def write(self, where: str, raw: Any, registers: Mapping[str, Register],
              params: Mapping[str, ParamSpec]) -> WriteSpec:
        w = self.mapping(raw, where, {"register", "value", "param", "factor", "offset", "source", "divide_by",
                                      "bits"}, {"register"})
        self.finite(where, w, ("value", "factor", "offset"))
        reg = registers.get(w["register"])
        if reg is None:
            raise self.fail(where, f"unknown register {w['register']!r}")
        if not reg.writable:
            raise self.fail(where, f"register {reg.name!r} is read-only")
        if sum(key in w for key in ("value", "param", "source")) != 1:
            raise self.fail(where, "give exactly one of 'value', 'param' or 'source'")
        if "param" in w and w["param"] not in params:
            raise self.fail(where, f"unknown param {w['param']!r}; declared: {list(params)}")
        for key in ("source", "divide_by"):
            if key in w and not (w[key] in registers and registers[w[key]].readable):
                raise self.fail(where, f"{key} {w[key]!r} is not a readable register of this map")
        if "divide_by" in w and "param" not in w:
            raise self.fail(where, "divide_by divides a param: give 'param' too")
        if "bits" in w:
            if isinstance(w["bits"], bool) or not isinstance(w["bits"], int) or not 0 < w["bits"] <= 0xFFFF:
                raise self.fail(where, f"bits {w['bits']!r} must be a mask 1..65535")
            if reg.type != "U16" or not reg.readable or reg.scale != 1 or reg.offset != 0 or reg.scale_factor:
                raise self.fail(where, "bits need a readable, unscaled U16 register (read-modify-write)")
            if "value" not in w or w["value"] != int(w["value"]) or int(w["value"]) & ~w["bits"]:
                raise self.fail(where, f"value {w.get('value')!r} must be a whole number within bits {w['bits']:#x}")
        write = WriteSpec(**w, scale_factor=reg.scale_factor)
        self.check_encodable(where, reg, write, params)
        return write

    def requirement(self, where: str, raw: Any, registers: Mapping[str, Register]) -> Requirement:
        r = self.mapping(raw, where, {"register", "values", "reason"}, {"register", "values", "reason"})
        reg = registers.get(r["register"])
        if reg is None or not reg.readable:
            raise self.fail(where, f"register {r['register']!r} is not a readable register of this map")
        values = r["values"]
        if not isinstance(values, list) or not values or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise self.fail(where, f"values must be a non-empty list of numbers, got {values!r}")
        return Requirement(reg.name, tuple(float(v) for v in values), str(r["reason"]))

    def check_encodable(self, where: str, reg: Register, write: WriteSpec, params: Mapping[str, ParamSpec]) -> None:
        """The register must hold the literal value, or the param's whole range, once resolved
        (a value read from the inverter, divided by a reading or scaled by the inverter's scale
        factor, is checked when it is written)."""
        if write.source is not None or write.divide_by is not None or write.bits is not None or write.scale_factor:
            return
        if write.param is None:
            values = [write.resolve({})]
        else:
            spec = params[write.param]
            values = [write.resolve({write.param: spec.min}), write.resolve({write.param: spec.max})]
        for value in values:
            try:
                encode_write(reg, value)
            except EncodeError as exc:
                raise self.fail(where, str(exc)) from None

    def check_distinguishable(self, controls: Mapping[str, Control]) -> None:
        """Each pair of controls must write some register literally with different values.

        The firmware (and the simulator) only sees register values; if one control's literal
        writes were a subset of another's, the inverter would be in both modes at once.
        """
        modes = list(controls.values())
        for i, control in enumerate(modes):
            for other in modes[:i]:
                mine, theirs = control.literal_writes, other.literal_writes
                if not any(reg in theirs and theirs[reg] != value for reg, value in mine.items()):
                    raise self.fail(
                        f"controls.{control.name}",
                        f"writes no register literally with a value different from {other.name}; "
                        "the inverter could not tell them apart",
                    )
