"""Logs three lines through an OpenTelemetry Python SDK OTLP/HTTP log exporter, protobuf
(opentelemetry-exporter-otlp-proto-http) or JSON (opentelemetry-exporter-otlp-json-http) as
the first argument says, to the URL given, with the push token given, gzip-compressed, then
flushes. Exits 1 if the exporter reported any failure."""
import logging
import sys

from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

encoding, url, token = sys.argv[1], sys.argv[2], sys.argv[3]
if encoding == "json":
    from opentelemetry.exporter.otlp.common.http import Compression
    from opentelemetry.exporter.otlp.json.http._log_exporter import OTLPLogExporter

    GZIP = Compression.GZIP
else:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    GZIP = Compression.Gzip


class Failures(logging.Handler):
    """Collects what the SDK logs at WARNING and above: that is how it reports a failed export."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.seen = []

    def emit(self, record):
        self.seen.append(record.getMessage())


failures = Failures()
logging.getLogger("opentelemetry").addHandler(failures)

resource = Resource.create({"service.name": f"otel-python-{encoding}", "host.name": "app-1"})
provider = LoggerProvider(resource=resource)
exporter = OTLPLogExporter(
    endpoint=url,
    headers={"Authorization": f"Bearer {token}"},
    compression=GZIP,
    timeout=10,
)
provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))

log = logging.getLogger("auth")
log.propagate = False
log.setLevel(logging.INFO)
log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))
log.warning("Failed password for root from 203.0.113.9 port 52144 ssh2", extra={"client.address": "203.0.113.9"})
log.info("session opened for user ops")
log.error("unicode \u00e9 \u2603 line")
provider.shutdown()

if failures.seen:
    print("\n".join(failures.seen), file=sys.stderr)
    sys.exit(1)
