"""Logs through python-logging-loki (a third-party Loki client from PyPI, JSON push with
Basic auth) to the URL in argv[1] with the secret in argv[2]. Exits 1 if the library
reported any failure to deliver."""
import logging
import sys

import logging_loki

failed = []


class Handler(logging_loki.LokiHandler):
    def handleError(self, record):
        failed.append(sys.exc_info()[1])


handler = Handler(
    url=sys.argv[1],
    tags={"job": "python-client", "host": "client-1"},
    auth=("client-1", sys.argv[2]),
    version="1",
)
log = logging.getLogger("security")
log.setLevel(logging.INFO)
log.addHandler(handler)
log.warning("Failed password for root from 203.0.113.9 port 52144 ssh2")
log.info("session opened for user ops", extra={"tags": {"unit": "sshd"}})
log.error("unicode \u00e9 \u2603 line")
if failed:
    print("delivery failed:", failed, file=sys.stderr)
    sys.exit(1)
