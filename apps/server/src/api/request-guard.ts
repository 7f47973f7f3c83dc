import type { ServiceDefinition } from "@grpc/grpc-js";
import { findField } from "@httpqueue/proto";
import { invalidArgument, type ApiError } from "./errors.js";

/** Set on a decoded request whose strings were not valid UTF-8: the field's name. */
const INVALID_UTF8 = Symbol("invalid UTF-8");
const REPLACEMENT = "\uFFFD";
const REPLACEMENT_BYTES = Buffer.from(REPLACEMENT, "utf8");

/**
 * The service definition with requests checked as they are decoded. The
 * protobuf decoder replaces bytes that are not UTF-8 with U+FFFD rather than
 * failing: a request with more U+FFFD in its strings than its bytes hold
 * (EF BF BD) had invalid text, which is recorded on it for `requestProblem`.
 */
export function guardedService<S extends ServiceDefinition>(definition: S): S {
  const guarded: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(definition)) {
    guarded[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        const request = method.requestDeserialize(bytes) as object;
        let decoded = 0;
        const field = findField(request, (text) => {
          const n = occurrences(text, REPLACEMENT);
          decoded += n;
          return n > 0;
        });
        if (field !== undefined && decoded > occurrences(bytes, REPLACEMENT_BYTES)) {
          Object.defineProperty(request, INVALID_UTF8, { value: field });
        }
        return request;
      },
    };
  }
  return guarded as S;
}

/**
 * Why a request is refused before any handler sees it: a string that was not
 * UTF-8, or one holding NUL (which PostgreSQL text cannot store), in any
 * field. Undefined when there is nothing to refuse.
 */
export function requestProblem(request: object): ApiError | undefined {
  const invalid = (request as { [INVALID_UTF8]?: string })[INVALID_UTF8];
  if (invalid !== undefined) return invalidArgument(invalid, "must be valid UTF-8 text");
  const nul = findField(request, (text) => text.includes("\u0000"));
  if (nul !== undefined) return invalidArgument(nul, "must not contain NUL characters");
  return undefined;
}

/** How often `needle` occurs in `haystack` (a string or bytes), without copying either. */
function occurrences<T extends string | Buffer>(haystack: T, needle: T): number {
  let count = 0;
  const search = (from: number) => (haystack as string).indexOf(needle as string, from);
  for (let at = search(0); at !== -1; at = search(at + needle.length)) count++;
  return count;
}
