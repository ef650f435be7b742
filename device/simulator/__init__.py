"""Inverter simulator: a Modbus server that behaves like real inverter firmware on the wire.

``Simulator(regmap, physics=PhysicsSettings(...), faults=Faults(...))`` serves any register
map over a serial device or TCP, with honest RS485 line timing, overlap detection, battery/PV/
load physics driven by the map's semantic controls, and fault injection.
"""

from device.simulator.faults import FaultError, Faults, parse_fault
from device.simulator.physics import PhysicsSettings
from device.simulator.server import Simulator, Stats

__all__ = ["FaultError", "Faults", "PhysicsSettings", "Simulator", "Stats", "parse_fault"]
