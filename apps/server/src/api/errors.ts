import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { isConcurrencyConflict, isDatabaseUnavailable, OverloadedError } from "../db/errors.js";

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

/**
 * The one place where an error becomes a gRPC status. ApiErrors keep their
 * code and message; a database that cannot be reached is UNAVAILABLE; a
 * transaction that lost a race with a concurrent one (a deadlock) is ABORTED,
 * changed nothing and can be retried; anything else is INTERNAL with a
 * generic message (the details go to the log).
 */
export function toServiceError(err: unknown): { error: Partial<ServiceError>; unexpected: boolean } {
  if (err instanceof ApiError) return { error: serviceError(err.code, err.message), unexpected: false };
  if (err instanceof OverloadedError) {
    return {
      error: serviceError(status.RESOURCE_EXHAUSTED, "the server is busy storing earlier calls; retry shortly"),
      unexpected: false,
    };
  }
  if (isDatabaseUnavailable(err)) {
    return {
      error: serviceError(status.UNAVAILABLE, "the database is unavailable; try again later"),
      unexpected: true,
    };
  }
  if (isConcurrencyConflict(err)) {
    return {
      error: serviceError(status.ABORTED, "a concurrent change conflicted with this one; nothing was changed: retry"),
      unexpected: true,
    };
  }
  return { error: serviceError(status.INTERNAL, "internal error"), unexpected: true };
}

function serviceError(code: status, details: string): Partial<ServiceError> {
  return { code, details, metadata: new Metadata() };
}
