"""nattery: the home-battery appliance."""
