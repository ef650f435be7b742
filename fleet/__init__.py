"""``nattery-fleet``: the fleet's devices through Balena Cloud joined with the aggregator's view."""
