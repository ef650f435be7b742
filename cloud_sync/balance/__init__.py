"""Balance groups at the aggregator: membership over time, schedules, actuals, deviation and
settlement runs (issue 13).

Units, exact throughout: energy in integer **Wh** (a quarter-hour's net grid import, import −
export; MSCONS values in kWh with three decimals are whole Wh), prices in integer
**milli-EUR/MWh** (a price of 123.456 EUR/MWh is 123456), money in integer **nano-EUR**
(Wh × milli-EUR/MWh = 10⁻⁹ EUR). Nothing is ever a float, so sums and splits are exact on
SQLite and PostgreSQL alike and a rerun gives byte-identical results.

The pure core (no database): :mod:`.timegrid` (quarter-hours, local days, clock changes),
:mod:`.membership`, :mod:`.schedule` (group schedule, substitute schedules), :mod:`.prices`
(imbalance price series), :mod:`.settle` (deviation and the cost split), :mod:`.digest`,
:mod:`.anomalies`.
"""
