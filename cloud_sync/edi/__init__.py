"""The aggregator's EDI gateway: MSCONS files in, CONTRL and APERAK answers out (docs/edi.md).

``syntax`` (envelope → CONTRL codes), ``checks`` (content → APERAK codes), ``answers`` (the
EDIFACT of both), ``reconcile`` (device against partner values) are pure; ``store`` holds the
SQL, ``pipeline`` runs a file through all of them, ``routes`` is the HTTP API and ``cli`` the
``nattery-cloud edi`` commands.
"""
