import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { createSecureContext } from "node:tls";
import { fileURLToPath } from "node:url";
import { parseDuration } from "@httpqueue/proto";
import { z } from "zod";
import { parseCidr, type DestinationPolicy } from "./addresses.js";
import { KeyRing, parseKeys } from "./secrets/keys.js";
import { parseTokenFile, TokenFileError, tokenProblem } from "./tokens.js";

/** The server's settings. `loadConfig` is the only reader of `process.env`. */
export interface Config {
  /** Undefined: start the embedded PostgreSQL (development checkouts only). */
  databaseUrl: string | undefined;
  /** Where the embedded PostgreSQL keeps its data, and its port. */
  embeddedPostgres: { dir: string; port: number };
  databasePoolSize: number;
  grpcHost: string;
  grpcPort: number;
  /** Health checks and Prometheus metrics are served over HTTP here. */
  httpHost: string;
  httpPort: number;
  logLevel: LogLevel;
  /** Delays before the 2nd, 3rd, ... attempt, in ms; the last one repeats. */
  retrySchedule: number[];
  /** Each delay is multiplied by a random factor in [1 - jitter, 1 + jitter]. */
  retryJitter: number;
  /** Longest Retry-After we honour, in ms; longer ones are capped to it. */
  retryAfterMaxMs: number;
  maxAttempts: number;
  defaultTtlSeconds: number;
  maxTtlSeconds: number;
  maxPayloadBytes: number;
  responseBodyLimitBytes: number;
  /** Webhooks a server delivers to at once (graphile-worker's concurrent jobs). */
  workerConcurrency: number;
  /** Attempts in flight to one webhook at once. */
  webhookMaxInFlight: number;
  /** A webhook whose attempts all failed for this long (ms) is deactivated; 0: never. */
  autoDisableAfterMs: number;
  /** ... provided that at least this many attempts failed. */
  autoDisableMinFailures: number;
  /** A webhook whose attempts all failed for this long (ms) is announced (webhook.failing). */
  failingNoticeAfterMs: number;
  workerPollIntervalMs: number;
  shutdownTimeoutMs: number;
  /** How often the database and the worker are checked for the health endpoints. */
  healthCheckIntervalMs: number;
  /** Readiness fails once a due job of httpqueue's tasks has waited this long (ms); 0: not checked. */
  queueStallAfterMs: number;
  /** Events older than this (ms), whose deliveries all ended, are deleted with them; 0: kept for ever. */
  retentionMs: number;
  /** ... and have their payload and response bodies blanked once older than this (ms); 0: never. */
  payloadRetentionMs: number;
  /** How long an idempotency key is remembered, in seconds. */
  idempotencyWindowSeconds: number;
  /** Queue depth and webhook counts are read from the database at most this often. */
  metricsQueryIntervalMs: number;
  /** Messages a WatchDeliveries client may leave unread (for 10 s at most, then it is ended: RESOURCE_EXHAUSTED). */
  watchBuffer: number;
  /** Distinct namespace/event pairs labelled in httpqueue_events_pushed_total; later ones are "_other". */
  metricsEventLabelLimit: number;
  /**
   * API_TOKENS: bearer tokens the API accepts for the server's life. With no
   * API_TOKENS_FILE either, the API is open to anyone who can reach it.
   */
  apiTokens: string[];
  /**
   * API_TOKENS_FILE (an absolute path) and the tokens it held at start; the app reads it again when it changes
   * and on SIGHUP. Set, the API always requires a token: with none in it nor in API_TOKENS, every call is refused.
   */
  apiTokensFile: { path: string; tokens: string[] } | undefined;
  /** METRICS_TOKEN (or METRICS_TOKEN_FILE): /metrics requires it as a bearer token; undefined: /metrics is open. */
  metricsToken: string | undefined;
  /** gRPC over TLS (PEM contents); with clientCa, clients must present a certificate it signed. */
  tls: { cert: Buffer; key: Buffer; clientCa: Buffer | undefined } | undefined;
  /** Which addresses deliveries may connect to. */
  destinations: DestinationPolicy;
  /** SECRETS_KEY: signing secrets are sealed at rest with the first key, opened with any; undefined: stored plain. */
  secretsKeys: KeyRing | undefined;
}

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** `.data/postgres` at the root of the checkout (the same path from src/ and dist/). */
const DEFAULT_EMBEDDED_DIR = fileURLToPath(new URL("../../../.data/postgres", import.meta.url));

export const DEFAULTS = {
  EMBEDDED_PG_DIR: DEFAULT_EMBEDDED_DIR,
  EMBEDDED_PG_PORT: "54329",
  DATABASE_POOL_SIZE: "10",
  GRPC_HOST: "127.0.0.1",
  GRPC_PORT: "50051",
  HTTP_HOST: "127.0.0.1",
  HTTP_PORT: "8080",
  LOG_LEVEL: "info",
  RETRY_SCHEDULE: "5s,30s,2m,10m,30m,1h,2h,4h,8h",
  RETRY_JITTER: "0.2",
  RETRY_AFTER_MAX: "1h",
  MAX_ATTEMPTS: "10",
  DEFAULT_TTL_SECONDS: "86400",
  MAX_TTL_SECONDS: "2592000",
  MAX_PAYLOAD_BYTES: "262144",
  RESPONSE_BODY_LIMIT_BYTES: "16384",
  WORKER_CONCURRENCY: "64",
  WEBHOOK_MAX_IN_FLIGHT: "16",
  AUTO_DISABLE_AFTER: "5d",
  AUTO_DISABLE_MIN_FAILURES: "10",
  FAILING_NOTICE_AFTER: "1h",
  WORKER_POLL_INTERVAL: "1s",
  SHUTDOWN_TIMEOUT: "30s",
  HEALTH_CHECK_INTERVAL: "5s",
  QUEUE_STALL_AFTER: "2m",
  RETENTION: "30d",
  IDEMPOTENCY_WINDOW: "24h",
  METRICS_QUERY_INTERVAL: "10s",
  METRICS_EVENT_LABEL_LIMIT: "100",
  WATCH_BUFFER: "1000",
  ALLOW_PRIVATE_DESTINATIONS: "false",
} as const satisfies Record<string, string>;

const int = (min: number, max: number) =>
  z.string().trim().regex(/^\d+$/, "must be a whole number").transform(Number).pipe(z.number().int().min(min).max(max));

const duration = (min: number, max: number) =>
  z
    .string()
    .transform((text, ctx) => {
      const ms = parseDuration(text);
      if (ms === undefined) {
        ctx.addIssue({ code: "custom", message: 'must be a duration such as "500ms", "5s", "2m" or "1h"' });
        return z.NEVER;
      }
      return ms;
    })
    .pipe(z.number().min(min, `must be at least ${min}ms`).max(max, `must be at most ${max}ms`));

const HOUR = 3_600_000;
const YEAR = 365 * 24 * HOUR;
/** 0 (off) or a duration of at least a second. */
const retention = () => duration(0, 10 * YEAR).refine((ms) => ms === 0 || ms >= 1000, "must be 0 (off) or at least 1s");

const schema = z.object({
  DATABASE_URL: z
    .string()
    .trim()
    .regex(/^postgres(ql)?:\/\//, "must be a postgres:// or postgresql:// URL")
    .optional(),
  EMBEDDED_PG_DIR: z
    .string()
    .trim()
    .min(1)
    .transform((dir) => resolve(dir)),
  EMBEDDED_PG_PORT: int(1, 65535),
  DATABASE_POOL_SIZE: int(1, 1000),
  GRPC_HOST: z.string().trim().min(1, "must not be empty"),
  GRPC_PORT: int(0, 65535),
  HTTP_HOST: z.string().trim().min(1, "must not be empty"),
  HTTP_PORT: int(0, 65535),
  LOG_LEVEL: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(", ")}` }),
  RETRY_SCHEDULE: z
    .string()
    .transform((text, ctx) => {
      const delays = text.split(",").map(parseDuration);
      if (delays.length === 0 || delays.some((d) => d === undefined)) {
        ctx.addIssue({ code: "custom", message: 'must be a comma-separated list of durations such as "5s,30s,2m"' });
        return z.NEVER;
      }
      return delays as number[];
    })
    .pipe(
      z.array(
        z
          .number()
          .min(0)
          .max(7 * 24 * HOUR, "each delay must be at most 168h"),
      ),
    ),
  RETRY_JITTER: z
    .string()
    .trim()
    .regex(/^\d+(\.\d+)?$/, "must be a number between 0 and 1")
    .transform(Number)
    .pipe(z.number().min(0).max(1)),
  RETRY_AFTER_MAX: duration(0, 24 * HOUR),
  MAX_ATTEMPTS: int(1, 100),
  DEFAULT_TTL_SECONDS: int(1, 365 * 24 * 3600),
  MAX_TTL_SECONDS: int(1, 365 * 24 * 3600),
  MAX_PAYLOAD_BYTES: int(2, 64 * 1024 * 1024),
  RESPONSE_BODY_LIMIT_BYTES: int(0, 1024 * 1024),
  WORKER_CONCURRENCY: int(1, 1000),
  WEBHOOK_MAX_IN_FLIGHT: int(1, 1000),
  AUTO_DISABLE_AFTER: duration(0, 365 * 24 * HOUR),
  AUTO_DISABLE_MIN_FAILURES: int(1, 1_000_000),
  FAILING_NOTICE_AFTER: duration(1000, 365 * 24 * HOUR),
  WORKER_POLL_INTERVAL: duration(10, 60_000),
  SHUTDOWN_TIMEOUT: duration(0, 10 * 60_000),
  HEALTH_CHECK_INTERVAL: duration(10, 5 * 60_000),
  QUEUE_STALL_AFTER: duration(0, 24 * HOUR).refine((ms) => ms === 0 || ms >= 1000, "must be 0 (off) or at least 1s"),
  RETENTION: retention(),
  // Unset: RETENTION.
  PAYLOAD_RETENTION: retention().optional(),
  // Whole seconds (push_settings keeps seconds).
  IDEMPOTENCY_WINDOW: duration(1000, YEAR).refine((ms) => ms % 1000 === 0, "must be whole seconds"),
  METRICS_QUERY_INTERVAL: duration(10, 10 * 60_000),
  METRICS_EVENT_LABEL_LIMIT: int(0, 10_000),
  // At least the streams' high-water mark (16 messages), so that a full buffer always ends in 'drain'.
  WATCH_BUFFER: int(100, 100_000),
  API_TOKENS: z.string().optional(),
  API_TOKENS_FILE: z.string().trim().optional(),
  METRICS_TOKEN: z.string().trim().optional(),
  METRICS_TOKEN_FILE: z.string().trim().optional(),
  TLS_CERT_FILE: z.string().trim().optional(),
  TLS_KEY_FILE: z.string().trim().optional(),
  TLS_CLIENT_CA_FILE: z.string().trim().optional(),
  ALLOW_PRIVATE_DESTINATIONS: z
    .string()
    .trim()
    .toLowerCase()
    .pipe(z.enum(["true", "false", "1", "0"], { error: "must be true or false" }))
    .transform((v) => v === "true" || v === "1"),
  DESTINATION_ALLOWLIST: z.string().optional(),
  SECRETS_KEY: z
    .string()
    .transform((text, ctx) => {
      const { keys, problems } = parseKeys(text);
      for (const problem of problems) ctx.addIssue({ code: "custom", message: problem });
      return problems.length > 0 ? z.NEVER : keys;
    })
    .optional(),
  SECRETS_KEY_FILE: z.string().trim().optional(),
});

export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * Reads and validates the configuration. Throws a ConfigError naming every bad
 * variable; unset or empty variables take their default.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const raw: Record<string, string | undefined> = { ...DEFAULTS };
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value.trim() !== "") raw[key] = value;
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `${issue.path.join(".")} ${issue.message}`);
    throw new ConfigError(`invalid configuration:\n  ${lines.join("\n  ")}`);
  }
  const e = parsed.data;
  if (e.DEFAULT_TTL_SECONDS > e.MAX_TTL_SECONDS) {
    throw new ConfigError(
      `invalid configuration:\n  DEFAULT_TTL_SECONDS (${e.DEFAULT_TTL_SECONDS}) must not exceed MAX_TTL_SECONDS (${e.MAX_TTL_SECONDS})`,
    );
  }
  if (e.HTTP_PORT !== 0 && e.HTTP_PORT === e.GRPC_PORT) {
    throw new ConfigError(`invalid configuration:\n  HTTP_PORT (${e.HTTP_PORT}) must differ from GRPC_PORT`);
  }
  retentionProblems(e, env);
  return {
    ...settings(e),
    ...securitySettings(e),
  };
}

/**
 * Payloads go no later than their events, and a key is remembered no longer
 * than its event's payload (a repeat is compared with it) nor its event.
 */
function retentionProblems(e: z.infer<typeof schema>, env: NodeJS.ProcessEnv): void {
  const text = (name: "RETENTION" | "PAYLOAD_RETENTION" | "IDEMPOTENCY_WINDOW"): string =>
    `${name} (${env[name]?.trim() || (name === "PAYLOAD_RETENTION" ? `RETENTION, ${text("RETENTION")}` : DEFAULTS[name])})`;
  const payload = e.PAYLOAD_RETENTION ?? e.RETENTION;
  const fail = (line: string): never => {
    throw new ConfigError(`invalid configuration:\n  ${line}`);
  };
  if (e.RETENTION > 0 && payload > e.RETENTION) {
    fail(`${text("PAYLOAD_RETENTION")} must not exceed ${text("RETENTION")}: an event goes with its payload`);
  }
  if (payload > 0 && e.IDEMPOTENCY_WINDOW > payload) {
    fail(
      `${text("IDEMPOTENCY_WINDOW")} must not exceed ${text("PAYLOAD_RETENTION")}: a repeated key is compared with its event's payload`,
    );
  }
  if (e.RETENTION > 0 && e.IDEMPOTENCY_WINDOW > e.RETENTION) {
    fail(`${text("IDEMPOTENCY_WINDOW")} must not exceed ${text("RETENTION")}: a key goes with its event`);
  }
}

function settings(e: z.infer<typeof schema>) {
  return {
    databaseUrl: e.DATABASE_URL,
    embeddedPostgres: { dir: e.EMBEDDED_PG_DIR, port: e.EMBEDDED_PG_PORT },
    databasePoolSize: e.DATABASE_POOL_SIZE,
    grpcHost: e.GRPC_HOST,
    grpcPort: e.GRPC_PORT,
    httpHost: e.HTTP_HOST,
    httpPort: e.HTTP_PORT,
    logLevel: e.LOG_LEVEL,
    retrySchedule: e.RETRY_SCHEDULE,
    retryJitter: e.RETRY_JITTER,
    retryAfterMaxMs: e.RETRY_AFTER_MAX,
    maxAttempts: e.MAX_ATTEMPTS,
    defaultTtlSeconds: e.DEFAULT_TTL_SECONDS,
    maxTtlSeconds: e.MAX_TTL_SECONDS,
    maxPayloadBytes: e.MAX_PAYLOAD_BYTES,
    responseBodyLimitBytes: e.RESPONSE_BODY_LIMIT_BYTES,
    workerConcurrency: e.WORKER_CONCURRENCY,
    webhookMaxInFlight: e.WEBHOOK_MAX_IN_FLIGHT,
    autoDisableAfterMs: e.AUTO_DISABLE_AFTER,
    autoDisableMinFailures: e.AUTO_DISABLE_MIN_FAILURES,
    failingNoticeAfterMs: e.FAILING_NOTICE_AFTER,
    workerPollIntervalMs: e.WORKER_POLL_INTERVAL,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT,
    healthCheckIntervalMs: e.HEALTH_CHECK_INTERVAL,
    queueStallAfterMs: e.QUEUE_STALL_AFTER,
    retentionMs: e.RETENTION,
    payloadRetentionMs: e.PAYLOAD_RETENTION ?? e.RETENTION,
    idempotencyWindowSeconds: e.IDEMPOTENCY_WINDOW / 1000,
    metricsQueryIntervalMs: e.METRICS_QUERY_INTERVAL,
    metricsEventLabelLimit: e.METRICS_EVENT_LABEL_LIMIT,
    watchBuffer: e.WATCH_BUFFER,
  };
}

/**
 * Tokens, TLS files and the destination policy: files are read here, at start,
 * once (API_TOKENS_FILE again later, by the app: api/token-file.ts).
 */
function securitySettings(
  e: z.infer<typeof schema>,
): Pick<Config, "apiTokens" | "apiTokensFile" | "metricsToken" | "tls" | "destinations" | "secretsKeys"> {
  const fail = (line: string): never => {
    throw new ConfigError(`invalid configuration:\n  ${line}`);
  };
  const read = (variable: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      return fail(`${variable} cannot be read (${path}): ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  };

  // Tokens are never echoed: a bad one is named by its position or line.
  const apiTokens = [
    ...new Set(
      (e.API_TOKENS ?? "")
        .split(",")
        .map((t) => t.trim())
        .filter((t) => t !== ""),
    ),
  ];
  for (const [i, token] of apiTokens.entries()) {
    const problem = tokenProblem(token);
    if (problem) fail(`API_TOKENS: token #${i + 1} ${problem}`);
  }
  let apiTokensFile: Config["apiTokensFile"];
  if (e.API_TOKENS_FILE) {
    const path = resolve(e.API_TOKENS_FILE);
    const text = read("API_TOKENS_FILE", path).toString("utf8");
    try {
      // At start an empty file is taken as holding no tokens (there are none in use to keep, unlike a reload).
      apiTokensFile = { path, tokens: parseTokenFile(text, false) };
    } catch (err) {
      if (!(err instanceof TokenFileError)) throw err;
      fail(`API_TOKENS_FILE ${path} ${err.message}`);
    }
  }

  let metricsToken = e.METRICS_TOKEN;
  if (e.METRICS_TOKEN_FILE) {
    if (metricsToken !== undefined) fail("METRICS_TOKEN and METRICS_TOKEN_FILE: set one of them, not both");
    metricsToken = read("METRICS_TOKEN_FILE", e.METRICS_TOKEN_FILE).toString("utf8").trim();
  }
  if (metricsToken !== undefined) {
    const problem = tokenProblem(metricsToken);
    if (problem) fail(`${e.METRICS_TOKEN_FILE ? "METRICS_TOKEN_FILE: the token" : "METRICS_TOKEN"} ${problem}`);
  }

  let tls: Config["tls"];
  if (e.TLS_CERT_FILE || e.TLS_KEY_FILE) {
    if (!e.TLS_CERT_FILE || !e.TLS_KEY_FILE) fail("TLS_CERT_FILE and TLS_KEY_FILE must be set together");
    const cert = read("TLS_CERT_FILE", e.TLS_CERT_FILE ?? "");
    const key = read("TLS_KEY_FILE", e.TLS_KEY_FILE ?? "");
    const clientCa = e.TLS_CLIENT_CA_FILE ? read("TLS_CLIENT_CA_FILE", e.TLS_CLIENT_CA_FILE) : undefined;
    try {
      createSecureContext({ cert, key, ca: clientCa });
    } catch (err) {
      fail(`TLS_CERT_FILE/TLS_KEY_FILE${clientCa ? "/TLS_CLIENT_CA_FILE" : ""}: ${(err as Error).message}`);
    }
    tls = { cert, key, clientCa };
  } else if (e.TLS_CLIENT_CA_FILE) {
    fail("TLS_CLIENT_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE");
  }

  const allowlist = (e.DESTINATION_ALLOWLIST ?? "")
    .split(",")
    .filter((entry) => entry.trim() !== "")
    .map((entry) => {
      try {
        return parseCidr(entry);
      } catch {
        return fail(`DESTINATION_ALLOWLIST: "${entry.trim()}" is not an address or a CIDR such as 10.0.0.0/8`);
      }
    });

  // Keys are never echoed: a bad one is named by position.
  let secretsKeys = e.SECRETS_KEY;
  if (e.SECRETS_KEY_FILE) {
    if (secretsKeys) fail("SECRETS_KEY and SECRETS_KEY_FILE: set one of them, not both");
    const { keys, problems } = parseKeys(read("SECRETS_KEY_FILE", e.SECRETS_KEY_FILE).toString("utf8"));
    if (problems.length > 0) fail(`SECRETS_KEY_FILE ${problems.join("; ")}`);
    secretsKeys = keys;
  }

  return {
    apiTokens,
    apiTokensFile,
    metricsToken,
    tls,
    destinations: { allowPrivate: e.ALLOW_PRIVATE_DESTINATIONS, allowlist },
    secretsKeys: secretsKeys ? new KeyRing(secretsKeys) : undefined,
  };
}
