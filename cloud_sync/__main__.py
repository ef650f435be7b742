"""``python -m cloud_sync`` runs the ``nattery-cloud`` command."""

from cloud_sync.cli import main

main(prog_name="nattery-cloud")
