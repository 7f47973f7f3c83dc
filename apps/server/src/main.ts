import { startApp } from "./app.js";
import { ConfigError, loadConfig } from "./config.js";
import { createLogger, prettyDestination } from "./observability/logger.js";

// Wiring only: config → logger → app (HTTP endpoints, migrations, worker, gRPC) → signals.

let config;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`httpqueue: ${err.message}\n`);
  process.exit(2);
}

// JSON lines for log collectors; readable lines when a person watches a terminal.
const logger = createLogger(config.logLevel, process.stdout.isTTY ? prettyDestination() : undefined);
let app;
try {
  app = await startApp(config, logger);
} catch (err) {
  logger.fatal({ err }, "httpqueue could not start");
  process.exit(1);
}
logger.info({ address: app.address, httpAddress: app.httpAddress }, `httpqueue listening on ${app.address}`);
logger.info(
  { httpAddress: app.httpAddress },
  `health and metrics on http://${app.httpAddress} (/healthz, /readyz, /metrics)`,
);

let signalled = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (signalled) {
      logger.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    signalled = true;
    logger.info({ signal }, "shutting down: no new calls, finishing running deliveries");
    const deadline = setTimeout(
      () => {
        logger.error("shutdown took too long; exiting");
        process.exit(1);
      },
      config.shutdownTimeoutMs * 2 + 10_000,
    );
    deadline.unref();
    app.stop().then(
      () => {
        logger.info("stopped");
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, "error while shutting down");
        process.exit(1);
      },
    );
  });
}

app.done.catch((err: unknown) => {
  logger.fatal({ err }, "the delivery worker stopped unexpectedly");
  process.exit(1);
});
