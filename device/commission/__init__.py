"""Commissioning: find the inverter on the bus, check it reads sensibly, prove a write is accepted.

What an installer does once per site, before handing over (``nattery commission``):

1. **Scan** (:mod:`.scan`): which shipped map answers plausibly at which line setting and unit
   id, one request on the line at a time.
2. **Check** (:mod:`.rules`): every readable register of the chosen map (enum values, the
   register's own limits, bands by unit) and the roles (SOC 0–100, counters non-negative,
   load ≈ pv + grid + battery).
3. **Harmless write** (:mod:`.procedure`): a setting written back with the value it already has
   (verified by read-back), or ``self_consumption``, the mode every fallback uses.
4. **Hand over** (:mod:`.handover`): the found ``inverter.map``/``port``/``unit_id`` and the
   homeowner's tariff and the market identities into the installer file, the homeowner's password
   into the web users file.

Nothing here prints: the :class:`~.report.Report` is data, rendered as a table or JSON by the CLI.
"""

from device.commission.handover import INSTALLER_FILE_NAME, check_password, load_section
from device.commission.procedure import commission, commission_inverter
from device.commission.report import CommissionError, Report, render_text
from device.commission.scan import parse_bauds, parse_units

__all__ = [
    "INSTALLER_FILE_NAME", "CommissionError", "Report", "check_password", "commission", "commission_inverter",
    "load_section", "parse_bauds", "parse_units", "render_text",
]
