import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";

/** Why a delivery failed verification; `WebhookVerificationError.reason`. */
export type WebhookVerificationFailure =
  | "invalid_secret"
  | "missing_header"
  | "invalid_timestamp"
  | "timestamp_too_old"
  | "timestamp_too_new"
  | "no_matching_signature"
  | "invalid_body";

/** Thrown by `verifyWebhook` when a request is not an authentic, fresh httpqueue delivery. */
export class WebhookVerificationError extends Error {
  override name = "WebhookVerificationError";
  readonly reason: WebhookVerificationFailure;

  constructor(reason: WebhookVerificationFailure, message: string, options?: ErrorOptions) {
    super(message, options);
    this.reason = reason;
  }
}

/**
 * Request headers as frameworks hand them over: Node's `req.headers` (also
 * Express and Fastify), a Fetch `Headers`, or anything with `get(name)`.
 */
export type WebhookHeaders =
  { get(name: string): string | null | undefined } | Readonly<Record<string, string | readonly string[] | undefined>>;

/** The raw request body, exactly as received: not parsed and re-serialised. */
export type RawBody = string | Uint8Array | ArrayBuffer;

export interface VerifyOptions {
  /** How far `webhook-timestamp` may be from now, in seconds, either way. Default 300 (5 minutes). */
  toleranceSeconds?: number | undefined;
  /** The current time, for tests. Default `Date.now()`. */
  now?: Date | number | undefined;
}

export interface VerifiedWebhook {
  /** `webhook-id`: the delivery id, the same on every retry: use it to drop repeats. */
  id: string;
  /** `webhook-timestamp`: when this attempt was signed. */
  timestamp: Date;
}

const SECRET_PREFIX = "whsec_";
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const DEFAULT_TOLERANCE_SECONDS = 5 * 60;

/**
 * Checks that a request is an httpqueue delivery signed with `secret`
 * (Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`)
 * and recent enough, and returns its parsed JSON payload. Throws a
 * `WebhookVerificationError` otherwise.
 */
export function verifyWebhook(
  rawBody: RawBody,
  headers: WebhookHeaders,
  secret: string,
  options?: VerifyOptions,
): unknown {
  const body = toBuffer(rawBody);
  verifyWebhookSignature(body, headers, secret, options);
  if (body.length === 0) {
    throw new WebhookVerificationError(
      "invalid_body",
      "the body is empty; deliveries of GET webhooks carry no body: check them with verifyWebhookSignature",
    );
  }
  try {
    return JSON.parse(body.toString("utf8"));
  } catch (err) {
    throw new WebhookVerificationError("invalid_body", `the body is not JSON (${errorMessage(err)})`, { cause: err });
  }
}

/**
 * The signature and timestamp checks of `verifyWebhook`, without parsing the
 * body (GET deliveries have none). Returns the delivery id and timestamp.
 */
export function verifyWebhookSignature(
  rawBody: RawBody,
  headers: WebhookHeaders,
  secret: string,
  options?: VerifyOptions,
): VerifiedWebhook {
  const key = secretKey(secret);
  const id = header(headers, "webhook-id");
  const timestampText = header(headers, "webhook-timestamp");
  const signatures = header(headers, "webhook-signature");

  if (!/^\d{1,15}$/.test(timestampText)) {
    throw new WebhookVerificationError(
      "invalid_timestamp",
      `the webhook-timestamp header is not a Unix time in seconds: "${timestampText.slice(0, 32)}"`,
    );
  }
  const timestamp = Number(timestampText);
  const tolerance = options?.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  const now = Math.floor(Number(options?.now ?? Date.now()) / 1000);
  if (now - timestamp > tolerance) {
    throw new WebhookVerificationError(
      "timestamp_too_old",
      `the webhook-timestamp is ${now - timestamp} seconds old; the tolerance is ${tolerance} seconds (a replay, or a clock out of sync)`,
    );
  }
  if (timestamp - now > tolerance) {
    throw new WebhookVerificationError(
      "timestamp_too_new",
      `the webhook-timestamp is ${timestamp - now} seconds in the future; the tolerance is ${tolerance} seconds (a clock out of sync)`,
    );
  }

  const expected = sign(key, id, timestampText, toBuffer(rawBody));
  const candidates = signatures
    .split(/\s+/)
    .filter((s) => s.startsWith("v1,"))
    .map((s) => s.slice(3));
  if (candidates.length === 0) {
    throw new WebhookVerificationError(
      "no_matching_signature",
      'the webhook-signature header has no "v1," signature (Standard Webhooks HMAC-SHA256)',
    );
  }
  const matches = candidates.some((candidate) => {
    const given = Buffer.from(candidate, "base64");
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  if (!matches) {
    throw new WebhookVerificationError(
      "no_matching_signature",
      "no signature matches: check the signing secret, and that the body is passed exactly as received (raw bytes, not re-serialised JSON)",
    );
  }
  return { id, timestamp: new Date(timestamp * 1000) };
}

/**
 * The Standard Webhooks headers httpqueue would send with `rawBody`: for
 * testing receivers without a server.
 */
export function signWebhook(
  rawBody: RawBody,
  secret: string,
  options?: { id?: string | undefined; timestamp?: Date | number | undefined },
): { "webhook-id": string; "webhook-timestamp": string; "webhook-signature": string } {
  const id = options?.id ?? randomUUID();
  const timestamp = String(Math.floor(Number(options?.timestamp ?? Date.now()) / 1000));
  const signature = sign(secretKey(secret), id, timestamp, toBuffer(rawBody)).toString("base64");
  return { "webhook-id": id, "webhook-timestamp": timestamp, "webhook-signature": `v1,${signature}` };
}

function sign(key: Buffer, id: string, timestamp: string, body: Buffer): Buffer {
  return createHmac("sha256", key).update(`${id}.${timestamp}.`).update(body).digest();
}

function secretKey(secret: string): Buffer {
  // Plain JavaScript callers may pass undefined from an unset variable.
  const given: unknown = secret;
  const text =
    typeof given !== "string" ? "" : given.startsWith(SECRET_PREFIX) ? given.slice(SECRET_PREFIX.length) : given;
  if (text === "" || !BASE64.test(text)) {
    throw new WebhookVerificationError(
      "invalid_secret",
      "the signing secret is not a webhook secret: expected whsec_ followed by base64, as RegisterWebhook returned it",
    );
  }
  return Buffer.from(text, "base64");
}

function toBuffer(body: RawBody): Buffer {
  if (typeof body === "string") return Buffer.from(body, "utf8");
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}

function header(headers: WebhookHeaders, name: string): string {
  const value = lookup(headers, name);
  if (value === undefined || value === "") {
    throw new WebhookVerificationError("missing_header", `the ${name} header is missing: not an httpqueue delivery?`);
  }
  return value;
}

function lookup(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof headers.get === "function") {
    return headers.get(name) ?? undefined;
  }
  const record = headers as Readonly<Record<string, string | readonly string[] | undefined>>;
  // Node lower-cases header names; objects built by hand may not.
  const key = name in record ? name : Object.keys(record).find((k) => k.toLowerCase() === name);
  const value = key === undefined ? undefined : record[key];
  return typeof value === "string" ? value : value?.join(" ");
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
