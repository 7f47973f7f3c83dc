import type {
  sendUnaryData,
  ServerUnaryCall,
  ServerWritableStream,
  ServiceDefinition,
  UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { findField } from "@httpqueue/proto";
import { invalidArgument, toServiceError, type ApiError } from "./errors.js";

/** Set on a decoded request whose strings were not valid UTF-8: the field's name. */
const INVALID_UTF8 = Symbol("invalid UTF-8");
/** Set on the stand-in for a request that could not be decoded at all: why not. */
const UNDECODABLE = Symbol("undecodable");
const REPLACEMENT = "\uFFFD";
const REPLACEMENT_BYTES = Buffer.from(REPLACEMENT, "utf8");

/**
 * The service definition with requests checked as they are decoded. The
 * protobuf decoder replaces bytes that are not UTF-8 with U+FFFD rather than
 * failing: a request with more U+FFFD in its strings than its bytes hold
 * (EF BF BD) had invalid text, which is recorded on it for `requestProblem`.
 * Bytes that are not a message of the RPC's request type at all (truncated,
 * an impossible wire type, groups nested past the decoder's limit) become an
 * empty stand-in that says why: grpc-js would otherwise answer INTERNAL
 * itself, a server fault for what is the caller's.
 */
export function guardedService<S extends ServiceDefinition>(definition: S): S {
  const guarded: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(definition)) {
    guarded[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        let request: object;
        try {
          request = method.requestDeserialize(bytes) as object;
        } catch (err) {
          const reason = err instanceof Error ? err.message : String(err);
          const rpc = method.path.slice(method.path.lastIndexOf("/") + 1);
          return Object.defineProperty({}, UNDECODABLE, { value: `is not a ${rpc} request message (${reason})` });
        }
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
 * Why a request is refused before any handler sees it: bytes that could not
 * be decoded, a string that was not UTF-8, or one holding NUL (which
 * PostgreSQL text cannot store), in any field. Undefined when there is
 * nothing to refuse.
 */
export function requestProblem(request: object): ApiError | undefined {
  const undecodable = (request as { [UNDECODABLE]?: string })[UNDECODABLE];
  if (undecodable !== undefined) {
    return invalidArgument("request", undecodable);
  }
  const invalid = (request as { [INVALID_UTF8]?: string })[INVALID_UTF8];
  if (invalid !== undefined) return invalidArgument(invalid, "must be valid UTF-8 text");
  const nul = findField(request, (text) => text.includes("\u0000"));
  if (nul !== undefined) return invalidArgument(nul, "must not contain NUL characters");
  return undefined;
}

/**
 * A service's handlers, for its `guardedService` definition, with each call
 * whose request `requestProblem` refuses answered with that status before the
 * handler sees it. Only calls with one request (unary and server-streaming):
 * the handler of a streaming request checks each message itself.
 */
export function guardedImplementation<I extends UntypedServiceImplementation>(
  definition: ServiceDefinition,
  implementation: I,
): I {
  const guarded: UntypedServiceImplementation = { ...implementation };
  for (const [rpc, method] of Object.entries(definition)) {
    // As grpc-js finds it: by the definition's key, else (proto-loader's definitions) by its original name.
    const name = rpc in implementation ? rpc : method.originalName;
    const handler = name === undefined ? undefined : implementation[name];
    if (method.requestStream || name === undefined || handler === undefined) continue;
    guarded[name] = method.responseStream
      ? (call: ServerWritableStream<object, unknown>) => {
          const problem = requestProblem(call.request);
          if (problem === undefined) (handler as (call: ServerWritableStream<object, unknown>) => void)(call);
          else call.emit("error", toServiceError(problem).error);
        }
      : (call: ServerUnaryCall<object, unknown>, callback: sendUnaryData<unknown>) => {
          const problem = requestProblem(call.request);
          if (problem === undefined) {
            (handler as (call: ServerUnaryCall<object, unknown>, callback: sendUnaryData<unknown>) => void)(
              call,
              callback,
            );
          } else callback(toServiceError(problem).error, null);
        };
  }
  return guarded as I;
}

/** How often `needle` occurs in `haystack` (a string or bytes), without copying either. */
function occurrences<T extends string | Buffer>(haystack: T, needle: T): number {
  let count = 0;
  const search = (from: number) => (haystack as string).indexOf(needle as string, from);
  for (let at = search(0); at !== -1; at = search(at + needle.length)) count++;
  return count;
}
