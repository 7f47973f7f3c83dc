import { CommanderError } from "commander";
import { Code, HttpQueueError } from "@httpqueue/sdk";

/** Exit codes: scripts can tell a refused request from a typo from a missing token. */
export const EXIT = {
  ok: 0,
  /** The server answered with an error, or could not be reached. */
  server: 1,
  /** Bad usage: unknown command or option, a missing or malformed argument, an unreadable file. */
  usage: 2,
  unauthenticated: 4,
} as const;

/** Bad usage found by webhookctl itself, before any call. */
export class UsageError extends Error {
  override name = "UsageError";
}

export interface ErrorReport {
  exitCode: number;
  /** One line, without the "error: " prefix. */
  message: string;
  /** Whether to point at `--help`. */
  usage: boolean;
}

/** How an error reaches the user: one line and an exit code, never a stack. */
export function describeError(err: unknown, address: string, deadlineMs: number): ErrorReport {
  if (err instanceof UsageError) return { exitCode: EXIT.usage, message: err.message, usage: true };
  if (err instanceof CommanderError) {
    return { exitCode: err.exitCode === 0 ? EXIT.ok : EXIT.usage, message: err.message, usage: false };
  }
  if (err instanceof HttpQueueError) {
    switch (err.code) {
      case Code.UNAUTHENTICATED:
        return {
          exitCode: EXIT.unauthenticated,
          message: `${err.codeName}: ${err.details} (set --token or WEBHOOKCTL_TOKEN)`,
          usage: false,
        };
      case Code.UNAVAILABLE: {
        const reason = connectionFailure(err.details);
        if (reason !== undefined) {
          return {
            exitCode: EXIT.server,
            message: `cannot reach httpqueue at ${address} (${err.codeName}${reason ? `: ${reason}` : ""})`,
            usage: false,
          };
        }
        break;
      }
      case Code.DEADLINE_EXCEEDED:
        return {
          exitCode: EXIT.server,
          message: `${err.codeName}: no answer from httpqueue at ${address} within ${formatMs(deadlineMs)} (see --timeout)`,
          usage: false,
        };
    }
    return { exitCode: EXIT.server, message: `${err.codeName}: ${err.details}`, usage: false };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { exitCode: EXIT.server, message: message.split("\n")[0] ?? message, usage: false };
}

/**
 * The reason when grpc-js gave up before reaching a server ("No connection
 * established. Last error: ..."); undefined for UNAVAILABLE sent by a server.
 */
function connectionFailure(details: string): string | undefined {
  const lastError = /^No connection established\. Last error: (?:Error: )?(.*?)\.?(?: Resolution note:.*)?$/s.exec(
    details,
  );
  if (lastError) return lastError[1] ?? "";
  if (details.startsWith("Name resolution failed")) return "the host name does not resolve";
  if (/^(Connection dropped|Failed to connect|connect E[A-Z]+)/i.test(details)) return details;
  return undefined;
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
