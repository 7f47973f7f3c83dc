import { Logger as GraphileLogger } from "graphile-worker";
import { pino, type Logger as PinoLogger } from "pino";
import PinoPretty from "pino-pretty";
import type { LogLevel } from "../config.js";
import { loggableError } from "../errors.js";

export type Logger = PinoLogger;

/**
 * JSON lines on stdout (see `prettyDestination` for a terminal). Errors are logged through `loggableError` (no row
 * details, no query parameters). Custom headers, signing secrets and
 * connection strings are redacted wherever they appear in a logged object, as
 * a second line of defence: code should not log them in the first place.
 */
export function createLogger(level: LogLevel, destination: pino.DestinationStream = pino.destination(1)): Logger {
  return pino(
    {
      level,
      base: { service: "httpqueue" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: loggableError },
      redact: {
        paths: [
          "headers",
          "*.headers",
          "signingSecret",
          "*.signingSecret",
          "signing_secret",
          "*.signing_secret",
          "previousSigningSecret",
          "*.previousSigningSecret",
          "previous_signing_secret",
          "*.previous_signing_secret",
          "databaseUrl",
          "*.databaseUrl",
          "connectionString",
          "*.connectionString",
          "authorization",
          "*.authorization",
          "password",
          "*.password",
        ],
        censor: "[redacted]",
      },
    },
    destination,
  );
}

/**
 * Human-readable lines for a terminal, redacted like the JSON ones (pino
 * redacts before it writes). Synchronous, so that the last lines before an
 * exit are not lost.
 */
export function prettyDestination(destination?: NodeJS.WritableStream): pino.DestinationStream {
  return PinoPretty({
    sync: true,
    translateTime: "SYS:HH:MM:ss.l",
    ignore: "service",
    // Colours on a terminal that supports them (pino-pretty's default), none into a stream.
    ...(destination ? { destination, colorize: false } : {}),
  });
}

/** graphile-worker's log lines, through our logger. Its per-job lines go to debug. */
export function graphileLogger(logger: Logger): GraphileLogger {
  const child = logger.child({ component: "graphile-worker" });
  return new GraphileLogger(() => (level, message, meta) => {
    const fields = meta?.error ? { err: meta.error } : {};
    switch (level as string) {
      case "error":
        child.error(fields, message);
        break;
      case "warning":
        child.warn(fields, message);
        break;
      case "info":
        child.debug(fields, message);
        break;
      default:
        child.trace(fields, message);
    }
  });
}
