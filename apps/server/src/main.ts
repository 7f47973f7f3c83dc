import { formatWithOptions } from "node:util";
import { setLogger as setGrpcLogger } from "@grpc/grpc-js";
import { startApp, type App } from "./app.js";
import { ConfigError, loadConfig } from "./config.js";
import { EmbeddedPostgresError, startEmbeddedPostgres, type EmbeddedPostgres } from "./db/embedded.js";
import { createLogger, prettyDestination } from "./observability/logger.js";
import { securityWarnings } from "./observability/security-warnings.js";
import { rekey } from "./secrets/rekey.js";

// Wiring only: config → logger → database (given, or embedded) → app (HTTP endpoints,
// migrations, worker, gRPC) → signals. `main.js rekey` runs that command instead of the server.

const COMMANDS = ["rekey"] as const;
const command = process.argv[2];
if (command !== undefined && !(COMMANDS as readonly string[]).includes(command)) {
  process.stderr.write(
    `httpqueue: unknown command "${command}" (commands: ${COMMANDS.join(", ")}; none starts the server)\n`,
  );
  process.exit(2);
}

let config;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`httpqueue: ${err.message}\n`);
  process.exit(2);
}

if (command === "rekey") {
  process.exit(
    await rekey({
      databaseUrl: config.databaseUrl,
      keys: config.secretsKeys,
      out: (line) => process.stdout.write(`${line}\n`),
    }),
  );
}

// JSON lines for log collectors; readable lines when a person watches a terminal.
const logger = createLogger(config.logLevel, process.stdout.isTTY ? prettyDestination() : undefined);
// grpc-js reports its own errors on stderr, unformatted: through our logger instead.
setGrpcLogger({
  error: (...args: unknown[]) => {
    logger.warn({ component: "grpc" }, formatWithOptions({}, ...args));
  },
});
// Node's own warnings (deprecations, too many listeners) go through the logger
// too: on stderr as plain text they would break "one JSON object per line".
process.removeAllListeners("warning");
process.on("warning", (warning) => {
  logger.warn({ component: "node", warning: { name: warning.name, message: warning.message } }, "node warning");
});
// SIGHUP reads API_TOKENS_FILE again (it is also read when it changes). Handled from here on: Node's
// default would end the process, were one to come during the start (the file has just been read then).
let started: App | undefined;
process.on("SIGHUP", () => {
  if (!config.apiTokensFile) {
    logger.info({ signal: "SIGHUP" }, "SIGHUP: nothing to reload (API_TOKENS_FILE is not set)");
  } else if (started) {
    logger.info({ signal: "SIGHUP" }, `SIGHUP: reading ${config.apiTokensFile.path} again`);
    void started.reloadApiTokens("SIGHUP");
  }
});
let embedded: EmbeddedPostgres | undefined;
let app: App;
try {
  let databaseUrl = config.databaseUrl;
  if (databaseUrl === undefined) {
    logger.info("DATABASE_URL is not set: starting the embedded PostgreSQL");
    embedded = await startEmbeddedPostgres({ ...config.embeddedPostgres, logger });
    databaseUrl = embedded.url;
  }
  app = await startApp({ ...config, databaseUrl }, logger);
  started = app;
} catch (err) {
  if (err instanceof EmbeddedPostgresError) logger.fatal(err.message);
  else logger.fatal({ err }, "httpqueue could not start");
  await embedded?.stop();
  process.exit(err instanceof EmbeddedPostgresError ? 2 : 1);
}
logger.info({ address: app.address, httpAddress: app.httpAddress }, `httpqueue listening on ${app.address}`);
logger.info(
  { httpAddress: app.httpAddress },
  `health and metrics on http://${app.httpAddress} (/healthz, /readyz, /metrics)`,
);
for (const { level, message } of securityWarnings(config, app.address, app.httpAddress)) logger[level](message);

/** Everything, in order: no new calls, running deliveries finish, then the database. */
async function stop(): Promise<void> {
  await app.stop();
  await embedded?.stop();
}

// A Ctrl-C can reach us twice (from the terminal and through a parent such as
// npm that forwards it); only a signal after this window forces an exit.
const REPEAT_WINDOW_MS = 3000;
let firstSignalAt: number | undefined;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (firstSignalAt !== undefined) {
      if (Date.now() - firstSignalAt < REPEAT_WINDOW_MS) return;
      logger.warn({ signal }, "another signal: exiting now");
      process.exit(1);
    }
    firstSignalAt = Date.now();
    logger.info({ signal }, "shutting down: no new calls, finishing running deliveries");
    const deadline = setTimeout(
      () => {
        logger.error("shutdown took too long; exiting");
        process.exit(1);
      },
      config.shutdownTimeoutMs * 2 + 10_000,
    );
    deadline.unref();
    stop().then(
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

app.done.catch(async (err: unknown) => {
  logger.fatal({ err }, "the delivery worker cannot be started again; exiting so that the server is restarted");
  await app.stop().catch(() => undefined);
  await embedded?.stop();
  process.exit(1);
});
