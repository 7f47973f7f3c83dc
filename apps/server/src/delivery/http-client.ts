import { isIP } from "node:net";
import { Agent, buildConnector, errors, type Dispatcher } from "undici";
import type { DestinationPolicy } from "../addresses.js";
import { rootCause } from "../errors.js";
import { DestinationBlockedError, resolveDestination } from "./destinations.js";

export interface OutgoingRequest {
  url: string;
  method: string;
  headers: Record<string, string>;
  /** Undefined sends no body (GET). */
  body: string | undefined;
  /** For the whole attempt: connecting, sending, the answer and its body. */
  timeoutMs: number;
}

/**
 * What happened to a request: a response (whatever its status), or why none
 * came. Whether that is a failure, and what follows, is the retry policy's
 * to say (retry-policy.ts).
 */
export interface AttemptOutcome {
  startedAt: Date;
  durationMs: number;
  /** Undefined when no response arrived. */
  statusCode?: number | undefined;
  /** The start of the response body, at most the configured limit. */
  responseBody?: string | undefined;
  retryAfter?: string | undefined;
  /** The response's headers, bounded (see `keptHeaders`). */
  responseHeaders?: Record<string, string> | undefined;
  /** Why no response came (connection refused, reset, timeout, refused destination). */
  error?: string | undefined;
  /** No response came in time (connecting, or waiting for the answer). */
  timedOut?: boolean | undefined;
  /** The destination guard refused the address before connecting. */
  blocked?: boolean | undefined;
}

export interface HttpClient {
  send(req: OutgoingRequest): Promise<AttemptOutcome>;
  /** Closes every connection, ending the requests still in flight (the worker has stopped). */
  close(): Promise<void>;
}

export interface HttpClientOptions {
  /** Most sockets kept open to one origin. */
  connections: number;
  responseBodyLimitBytes: number;
  /** Which addresses may be connected to. */
  destinations: DestinationPolicy;
}

/**
 * One pooled keep-alive agent for every delivery; redirects are not followed.
 * Every new connection goes through the destination check first. Requests go
 * through undici's dispatch with a handler of ours, which keeps the start of
 * the body as it comes: no stream, no AbortController, no listener per
 * request, the costs of undici's `request()` that show in profiles.
 */
export function createHttpClient(options: HttpClientOptions): HttpClient {
  const agent = new Agent({
    connections: options.connections,
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 120_000,
    connect: guardedConnector(options.destinations, buildConnector({ timeout: 10_000 })),
  });
  const targets = new Map<string, { origin: string; path: string }>();
  /** Origin and path of a URL, parsed once (webhooks send to few URLs). */
  const target = (url: string) => {
    let found = targets.get(url);
    if (!found) {
      const parsed = new URL(url);
      found = { origin: parsed.origin, path: `${parsed.pathname}${parsed.search}` };
      if (targets.size >= 10_000) targets.clear();
      targets.set(url, found);
    }
    return found;
  };

  /** Ends each request in flight: for close(). */
  const inFlight = new Set<() => void>();

  function send(req: OutgoingRequest): Promise<AttemptOutcome> {
    const startedAt = new Date();
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    const limit = options.responseBodyLimitBytes;
    return new Promise<AttemptOutcome>((resolve) => {
      let controller: Dispatcher.DispatchController | undefined;
      let statusCode: number | undefined;
      let retryAfter: string | undefined;
      let responseHeaders: Record<string, string> | undefined;
      const chunks: Buffer[] = [];
      let size = 0;
      /** Why we ended it ourselves: the deadline, enough of the body, or the client closing. */
      let endedBy: "timeout" | "enough" | "closed" | undefined;
      let settled = false;
      const finish = (outcome: Omit<AttemptOutcome, "startedAt" | "durationMs">) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        inFlight.delete(cancel);
        resolve({ startedAt, durationMs: elapsed(), ...outcome });
      };
      const answered = () => {
        finish({ statusCode, retryAfter, responseHeaders, responseBody: bodyText(Buffer.concat(chunks, size)) });
      };
      const timer = setTimeout(() => {
        endedBy = "timeout";
        controller?.abort(new errors.RequestAbortedError(`timed out after ${req.timeoutMs}ms`));
      }, req.timeoutMs);
      const cancel = () => {
        endedBy = "closed";
        controller?.abort(new errors.RequestAbortedError("the HTTP client was closed"));
        finish({ error: "the server stopped before an answer came" });
      };
      inFlight.add(cancel);
      const { origin, path } = target(req.url);
      agent.dispatch(
        {
          origin,
          path,
          method: req.method,
          headers: req.headers,
          body: req.body ?? null,
          headersTimeout: req.timeoutMs,
          bodyTimeout: req.timeoutMs,
        },
        {
          onRequestStart(c) {
            controller = c;
            if (endedBy === "timeout") c.abort(new errors.RequestAbortedError("timed out"));
          },
          onResponseStart(_c, status, headers) {
            statusCode = status;
            const value = headers["retry-after"];
            retryAfter = Array.isArray(value) ? value[0] : value;
            responseHeaders = keptHeaders(headers);
          },
          onResponseData(c, chunk) {
            if (size >= limit) return;
            const room = limit - size;
            chunks.push(room < chunk.length ? chunk.subarray(0, room) : chunk);
            size += Math.min(room, chunk.length);
            if (size >= limit) {
              // Enough is kept: the rest is not read (the connection is closed).
              endedBy = "enough";
              c.abort(new errors.RequestAbortedError("response body limit reached"));
            }
          },
          onResponseEnd() {
            answered();
          },
          onResponseError(_c, err) {
            if (endedBy === "enough") {
              answered();
              return;
            }
            // undici wraps the connector's errors.
            const cause = rootCause(err);
            if (cause instanceof DestinationBlockedError) {
              finish({ error: cause.message, blocked: true });
              return;
            }
            const timedOut = endedBy === "timeout" || isTimeout(err);
            finish({ error: describeError(err, req.timeoutMs, timedOut), timedOut });
          },
        },
      );
    });
  }

  return {
    send,
    async close() {
      for (const cancel of inFlight) cancel();
      await agent.destroy();
    },
  };
}

/** Most response headers kept with an attempt, and most characters of each value. */
const HEADERS_KEPT = 64;
const HEADER_VALUE_KEPT = 1024;

/**
 * The response headers kept with an attempt: the first 64, each value cut at
 * 1024 characters, repeated ones joined with ", " (a receiver cannot make an
 * attempt's record large).
 */
export function keptHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const kept: Record<string, string> = {};
  let count = 0;
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (++count > HEADERS_KEPT) break;
    const text = Array.isArray(value) ? value.join(", ") : value;
    // PostgreSQL text and jsonb cannot hold NUL.
    kept[name.toLowerCase()] = text.slice(0, HEADER_VALUE_KEPT).replaceAll("\u0000", "\uFFFD");
  }
  return kept;
}

/** The kept start of a response body, as text; PostgreSQL text cannot hold NUL. */
function bodyText(bytes: Buffer): string {
  return bytes.toString("utf8").replaceAll("\u0000", "\uFFFD");
}

/**
 * Resolves the host itself, refuses addresses the policy does not allow, and
 * connects to the very addresses it checked (the next one when a connection
 * is refused): no second DNS lookup that could answer differently. TLS still
 * names and verifies the original host.
 */
function guardedConnector(policy: DestinationPolicy, connect: buildConnector.connector): buildConnector.connector {
  return (opts, callback) => {
    const servername = opts.servername ?? (isIP(opts.hostname) ? undefined : opts.hostname);
    resolveDestination(policy, opts.hostname).then(
      (addresses) => {
        const attempt = (i: number) => {
          connect({ ...opts, hostname: addresses[i] ?? "", servername }, (err, socket) => {
            if (err && i + 1 < addresses.length && isUnreachable(err)) attempt(i + 1);
            else if (err) callback(err, null);
            else callback(null, socket);
          });
        };
        attempt(0);
      },
      (err: unknown) => {
        callback(err instanceof Error ? err : new Error(String(err)), null);
      },
    );
  };
}

function isUnreachable(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === "ECONNREFUSED" || code === "EHOSTUNREACH" || code === "ENETUNREACH" || code === "EADDRNOTAVAIL";
}

function isTimeout(err: unknown): boolean {
  return (
    err instanceof errors.HeadersTimeoutError ||
    err instanceof errors.BodyTimeoutError ||
    err instanceof errors.ConnectTimeoutError
  );
}

function describeError(err: unknown, timeoutMs: number, timedOut: boolean): string {
  if (timedOut || err instanceof errors.HeadersTimeoutError || err instanceof errors.BodyTimeoutError) {
    return `timed out after ${timeoutMs / 1000}s`;
  }
  if (err instanceof errors.ConnectTimeoutError) return "timed out while connecting";
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return code && !cause.message.includes(code) ? `${cause.message} (${code})` : cause.message;
  }
  return String(cause);
}
