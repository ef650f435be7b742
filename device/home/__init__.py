"""State of the appliance that belongs to the home, not to any one service: the homeowner's
settings (:mod:`.settings`) and the two web accounts (:mod:`.accounts`). The web page,
commissioning and the app use them."""
