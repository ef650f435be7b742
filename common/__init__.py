"""What the device (``device``) and the aggregator (``cloud_sync``) share: the sync protocol and
its value checks, logging, crash points for the kill tests. Imports neither of them."""
