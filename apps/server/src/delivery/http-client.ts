import { isIP } from "node:net";
import { Agent, buildConnector, errors, request } from "undici";
import { DestinationBlockedError, resolveDestination, type DestinationPolicy } from "./destinations.js";

export interface OutgoingRequest {
  url: string;
  method: string;
  headers: Record<string, string>;
  /** Undefined sends no body (GET). */
  body: string | undefined;
  timeoutMs: number;
  /** Aborts the request from outside (shutdown). */
  signal?: AbortSignal | undefined;
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
  /** Why no response came (connection refused, reset, timeout, refused destination). */
  error?: string | undefined;
  /** No response came in time (connecting, or waiting for the answer). */
  timedOut?: boolean | undefined;
  /** The destination guard refused the address before connecting. */
  blocked?: boolean | undefined;
}

export interface HttpClient {
  send(req: OutgoingRequest): Promise<AttemptOutcome>;
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
 * Every new connection goes through the destination check first.
 */
export function createHttpClient(options: HttpClientOptions): HttpClient {
  const agent = new Agent({
    connections: options.connections,
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 120_000,
    connect: guardedConnector(options.destinations, buildConnector({ timeout: 10_000 })),
  });

  // Requests in flight by the outside signal that may abort them (the
  // worker's shutdown signal): one listener on each such signal, whatever the
  // number of requests. A listener per request would pile up on a signal that
  // lives as long as the worker (and make Node warn past ten of them).
  const abortable = new WeakMap<AbortSignal, Set<AbortController>>();
  const track = (outside: AbortSignal, controller: AbortController): (() => void) => {
    let members = abortable.get(outside);
    if (!members) {
      const set = new Set<AbortController>();
      members = set;
      abortable.set(outside, set);
      outside.addEventListener(
        "abort",
        () => {
          for (const c of set) c.abort(outside.reason);
        },
        { once: true },
      );
    }
    members.add(controller);
    return () => members.delete(controller);
  };

  async function send(req: OutgoingRequest): Promise<AttemptOutcome> {
    const startedAt = new Date();
    const started = performance.now();
    // One controller per request, its timer removed when it ends.
    const controller = new AbortController();
    let timedOut = false as boolean; // set by the timer (a closure TypeScript does not follow)
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new Error(`timed out after ${req.timeoutMs}ms`));
    }, req.timeoutMs);
    let untrack = (): unknown => undefined;
    if (req.signal?.aborted) controller.abort(req.signal.reason);
    else if (req.signal) untrack = track(req.signal, controller);
    const signal = controller.signal;
    const elapsed = () => Math.round(performance.now() - started);
    try {
      const res = await request(req.url, {
        dispatcher: agent,
        method: req.method as "POST",
        headers: req.headers,
        body: req.body ?? null,
        signal,
        headersTimeout: req.timeoutMs,
        bodyTimeout: req.timeoutMs,
      });
      const responseBody = await readPrefix(res.body, options.responseBodyLimitBytes);
      const retryAfter = res.headers["retry-after"];
      return {
        startedAt,
        durationMs: elapsed(),
        statusCode: res.statusCode,
        responseBody,
        retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : retryAfter,
      };
    } catch (err) {
      if (req.signal?.aborted) throw err;
      if (err instanceof DestinationBlockedError) {
        return { startedAt, durationMs: elapsed(), error: err.message, blocked: true };
      }
      return {
        startedAt,
        durationMs: elapsed(),
        error: describeError(err, req.timeoutMs, timedOut),
        timedOut: timedOut || isTimeout(err),
      };
    } finally {
      clearTimeout(timer);
      untrack();
    }
  }

  return { send, close: () => agent.close() };
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

/** Reads up to `limit` bytes and drops the rest (closing the socket if the body is longer). */
async function readPrefix(body: AsyncIterable<Buffer> & { destroy(): unknown }, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    if (size + chunk.length >= limit) {
      chunks.push(chunk.subarray(0, limit - size));
      size = limit;
      break;
    }
    chunks.push(chunk);
    size += chunk.length;
  }
  if (size >= limit) body.destroy();
  // PostgreSQL text cannot hold NUL.
  return Buffer.concat(chunks, size).toString("utf8").replaceAll("\u0000", "\uFFFD");
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
