"""What the device (``device``) and the aggregator (``cloud_sync``) share, imported by both and
importing neither: the sync protocol and its value checks (:mod:`~common.sync_protocol`,
:mod:`~common.sync_values`), capped exponential backoff (:mod:`~common.backoff`), the one UTC
time format (:mod:`~common.utc`), scrypt password hashes (:mod:`~common.passwords`), atomic file
writes (:mod:`~common.files`), the one finite-number check of decoded JSON/YAML
(:mod:`~common.numbers`), logging (:mod:`~common.logs`) and crash points for the kill tests
(:mod:`~common.crash`)."""
