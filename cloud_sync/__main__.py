"""``python -m cloud_sync`` runs the ``nattery-cloud`` command."""

import gc

# The command's imports create about 100,000 objects that all stay; the collector passing over
# them again and again while they are made cost about 0.15 s of CPU per start (measured with
# `python -X importtime`), which the tests' many aggregator starts add up.
gc.disable()
try:
    from cloud_sync.cli import main
finally:
    gc.enable()

main(prog_name="nattery-cloud")
