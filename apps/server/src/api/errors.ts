import { Metadata, status, type ServiceError } from "@grpc/grpc-js";

/** An error meant for the caller: its code and message go on the wire as they are. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly code: status,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export const invalidArgument = (field: string, problem: string) =>
  new ApiError(status.INVALID_ARGUMENT, `${field}: ${problem}`);
export const notFound = (message: string) => new ApiError(status.NOT_FOUND, message);

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

/** The innermost error: drizzle wraps driver errors (with the query's parameters in its message). */
export function rootCause(err: unknown): unknown {
  let current = err;
  for (let depth = 0; depth < 10 && current instanceof Error && current.cause !== undefined; depth++) {
    current = current.cause;
  }
  return current;
}

export function isDatabaseUnavailable(err: unknown): boolean {
  const cause = rootCause(err);
  const code = cause instanceof Error ? (cause as { code?: unknown }).code : undefined;
  return typeof code === "string" && (CONNECTION_CODES.has(code) || isUnavailableSqlState(code));
}

/**
 * The one place where an error becomes a gRPC status. ApiErrors keep their
 * code and message; a database that cannot be reached is UNAVAILABLE; anything
 * else is INTERNAL with a generic message (the details go to the log).
 */
export function toServiceError(err: unknown): { error: Partial<ServiceError>; unexpected: boolean } {
  if (err instanceof ApiError) return { error: serviceError(err.code, err.message), unexpected: false };
  if (isDatabaseUnavailable(err)) {
    return {
      error: serviceError(status.UNAVAILABLE, "the database is unavailable; try again later"),
      unexpected: true,
    };
  }
  return { error: serviceError(status.INTERNAL, "internal error"), unexpected: true };
}

function serviceError(code: status, details: string): Partial<ServiceError> {
  return { code, details, metadata: new Metadata() };
}
