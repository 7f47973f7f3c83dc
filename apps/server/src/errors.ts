/** Recognising database errors: by SQLSTATE or driver code, never by message text. */

/** The innermost error: drizzle wraps driver errors, with the query's parameters in its message. */
export function rootCause(err: unknown): unknown {
  let current = err;
  for (let depth = 0; depth < 10 && current instanceof Error && current.cause !== undefined; depth++) {
    current = current.cause;
  }
  return current;
}

function codeOf(err: unknown): string | undefined {
  const code = err instanceof Error ? (err as { code?: unknown }).code : undefined;
  return typeof code === "string" ? code : undefined;
}

/** Network failures of the database connection (postgres.js and Node codes). */
const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
]);

/** SQLSTATEs that mean "the database cannot serve us right now". */
function isUnavailableSqlState(code: string): boolean {
  return (
    code.startsWith("08") || // connection exception
    code === "57P01" || // admin_shutdown
    code === "57P02" || // crash_shutdown
    code === "57P03" || // cannot_connect_now
    code === "53300" // too_many_connections
  );
}

export function isDatabaseUnavailable(err: unknown): boolean {
  const code = codeOf(rootCause(err));
  return code !== undefined && (CONNECTION_CODES.has(code) || isUnavailableSqlState(code));
}

/**
 * A statement aborted because it met another one (deadlock, serialization
 * failure): nothing of it was applied, and running it again may succeed.
 */
export function isTransientConflict(err: unknown): boolean {
  const code = codeOf(rootCause(err));
  return code === "40P01" || code === "40001";
}

/**
 * What of an error may be logged. PostgreSQL's `detail` can quote a whole row
 * (signing secret and custom headers included) and drizzle's message quotes
 * the query's parameters, so neither is kept: the SQLSTATE, the server's
 * message and where it came from are enough to diagnose. Our own wrappers'
 * messages are kept ("cannot listen on … (GRPC_HOST/GRPC_PORT): …" says more
 * than the EADDRINUSE under it).
 */
export function loggableError(err: unknown): Record<string, unknown> {
  const cause = rootCause(err);
  if (!(cause instanceof Error)) return { message: String(cause) };
  const e = cause as Error & Record<string, unknown>;
  const out: Record<string, unknown> = { type: e.name, message: e.message, stack: e.stack };
  for (const key of ["code", "severity", "schema_name", "table_name", "column_name", "constraint_name", "routine"]) {
    if (e[key] !== undefined) out[key] = e[key];
  }
  if (err instanceof Error && err !== cause && !isQueryWrapper(err)) out.message = err.message;
  return out;
}

/** drizzle's wrapper of driver errors, whose message holds the query and its parameters. */
function isQueryWrapper(err: Error): boolean {
  return err.constructor.name === "DrizzleQueryError" || err.message.startsWith("Failed query:");
}

/** A deadlock or serialization failure: the transaction was rolled back and can simply run again. */
export function isConcurrencyConflict(err: unknown): boolean {
  const code = codeOf(rootCause(err));
  return code === "40P01" || code === "40001";
}

/** Too much work is waiting for the database already: the caller should retry later. */
export class OverloadedError extends Error {
  override name = "OverloadedError";
}

/**
 * A push whose idempotency key was used in its namespace, within the
 * idempotency window, by an event with another name or payload: nothing was
 * stored. The message names the key (never the payload).
 */
export class IdempotencyKeyConflictError extends Error {
  override name = "IdempotencyKeyConflictError";
  constructor(
    readonly key: string,
    readonly namespace: string,
    /** The event that holds the key. */
    readonly eventId: string,
    readonly differs: "event" | "payload",
  ) {
    super(
      `idempotency_key: ${JSON.stringify(key)} was used in namespace ${JSON.stringify(namespace)} by event ${eventId} ` +
        `with a different ${differs === "event" ? "event name" : "payload"}; a repeat within the idempotency window ` +
        `must have the same event name and payload`,
    );
  }
}
