"""Energy-sharing communities: members, the quarter-hour market and its settlement.

The matching core (:mod:`.model`, :mod:`.book`, :mod:`.rules`, :mod:`.settle`) is pure: no
database, no clock, integer arithmetic only, so a tick replayed from the same inputs gives the
same trades byte for byte. Units everywhere: energy in whole Wh, prices in integer µEUR/kWh
(1 ct/kWh = 10,000), money in integer nano-euro (nEUR: Wh × µEUR/kWh, exact).
"""
