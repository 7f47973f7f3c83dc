import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { toWellFormed } from "@httpqueue/proto";
import {
  IdempotencyKeyConflictError,
  isConcurrencyConflict,
  isDatabaseUnavailable,
  OverloadedError,
} from "../errors.js";
import { SecretUnavailableError } from "../secrets/cipher.js";

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
 * code and message; an idempotency key held by another event is
 * ALREADY_EXISTS; a database that cannot be reached is UNAVAILABLE; a
 * transaction that lost a race with a concurrent one (a deadlock) is ABORTED,
 * changed nothing and can be retried; a stored secret that no key of the
 * server opens is FAILED_PRECONDITION, naming the key by id; anything else is
 * INTERNAL with a generic message (the details go to the log).
 */
export function toServiceError(err: unknown): { error: Partial<ServiceError>; unexpected: boolean } {
  if (err instanceof ApiError) return { error: serviceError(err.code, err.message), unexpected: false };
  if (err instanceof IdempotencyKeyConflictError) {
    return { error: serviceError(status.ALREADY_EXISTS, err.message), unexpected: false };
  }
  if (err instanceof OverloadedError) {
    return {
      error: serviceError(status.RESOURCE_EXHAUSTED, "the server is busy storing earlier calls; retry shortly"),
      unexpected: false,
    };
  }
  if (err instanceof SecretUnavailableError) {
    // This server's SECRETS_KEY lacks the key that sealed it: for the operator to fix, not the caller.
    return { error: serviceError(status.FAILED_PRECONDITION, err.message), unexpected: true };
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
  return { code, details: wireText(details), metadata: new Metadata() };
}

/** Longest status message sent: a client may refuse trailers past a few KiB. */
export const MAX_DETAILS_LENGTH = 1000;

/**
 * A status message that grpc-js can always send, whatever went into it:
 * well-formed UTF-16 (grpc-js percent-encodes it with encodeURI, which throws
 * on a lone surrogate, outside any handler, and that ends the process),
 * control characters escaped, at most MAX_DETAILS_LENGTH characters.
 */
export function wireText(text: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are what it replaces
  let out = toWellFormed(text).replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => {
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
  });
  if (out.length > MAX_DETAILS_LENGTH) out = `${out.slice(0, MAX_DETAILS_LENGTH - 1)}…`;
  return toWellFormed(out);
}
