import { pino, type Logger as PinoLogger } from "pino";
import type { LogLevel } from "../config.js";
import { loggableError } from "../db/errors.js";

export type Logger = PinoLogger;

/**
 * JSON lines on stdout. Errors are logged through `loggableError` (no row
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
          "databaseUrl",
          "*.databaseUrl",
          "connectionString",
          "*.connectionString",
        ],
        censor: "[redacted]",
      },
    },
    destination,
  );
}
