// Logs three records through the OpenTelemetry JavaScript SDK's OTLP/HTTP log exporter,
// which sends OTLP/JSON, to the URL given with the push token given, then flushes. Exits 1
// if an export failed.
import { logs, SeverityNumber } from "@opentelemetry/api-logs";
import { OTLPLogExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { LoggerProvider, SimpleLogRecordProcessor } from "@opentelemetry/sdk-logs";

const [url, token] = process.argv.slice(2);
const exporter = new OTLPLogExporter({ url, headers: { Authorization: `Bearer ${token}` } });
let failed = 0;
const checked = {
  export(records, done) {
    exporter.export(records, (result) => {
      if (result.code !== 0) {
        failed += 1;
        console.error(`export failed: ${result.error}`);
      }
      done(result);
    });
  },
  shutdown: () => exporter.shutdown(),
  forceFlush: () => exporter.forceFlush(),
};
const provider = new LoggerProvider({
  resource: resourceFromAttributes({ "service.name": "otel-js", "host.name": "app-2" }),
  processors: [new SimpleLogRecordProcessor({ exporter: checked })],
});
logs.setGlobalLoggerProvider(provider);
const log = logs.getLogger("auth", "2.0");
log.emit({
  severityNumber: SeverityNumber.WARN,
  severityText: "WARN",
  body: "Failed password for root from 203.0.113.10 port 40022 ssh2",
  attributes: { "client.address": "203.0.113.10", attempt: 3 },
});
log.emit({ severityNumber: SeverityNumber.INFO, body: { event: "login", user: "ops" } });
log.emit({ severityNumber: SeverityNumber.ERROR, body: "unicode \u00e9 \u2603 line" });
await provider.forceFlush();
await provider.shutdown();
process.exit(failed === 0 ? 0 : 1);
