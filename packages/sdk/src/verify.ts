import { randomUUID } from "node:crypto";
import {
  decodeVerificationKey,
  parseSignatureHeader,
  signatureVersion,
  signWebhook as signatureHeader,
  verifySignatureHeader,
  type VerificationKey,
} from "./signing.js";

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

/**
 * What a receiver verifies with: the `signingSecret` ("whsec_…") for HMAC
 * webhooks, the public key ("whpk_…") for ed25519 ones, or several of them
 * while a secret is being rotated (any one matching signature is enough).
 */
export type WebhookKey = string | readonly string[];

const DEFAULT_TOLERANCE_SECONDS = 5 * 60;

/**
 * Checks that a request is an httpqueue delivery signed for `key` (Standard
 * Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`) and recent
 * enough, and returns its parsed JSON payload. Throws a
 * `WebhookVerificationError` otherwise.
 */
export function verifyWebhook(
  rawBody: RawBody,
  headers: WebhookHeaders,
  key: WebhookKey,
  options?: VerifyOptions,
): unknown {
  const body = toBuffer(rawBody);
  verifyWebhookSignature(body, headers, key, options);
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
  key: WebhookKey,
  options?: VerifyOptions,
): VerifiedWebhook {
  const keys = verificationKeys(key);
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

  if (!verifySignatureHeader(keys, id, timestamp, toBuffer(rawBody), signatures)) {
    const versions = [...new Set(keys.map((k) => signatureVersion(k.scheme)))];
    const present = new Set(parseSignatureHeader(signatures).map((s) => s.version));
    if (!versions.some((v) => present.has(v))) {
      throw new WebhookVerificationError(
        "no_matching_signature",
        `the webhook-signature header has no ${versions.map((v) => `"${v},"`).join(" or ")} signature (${versions
          .map((v) => (v === "v1" ? "HMAC-SHA256, for a whsec_ secret" : "ed25519, for a whpk_ public key"))
          .join("; ")})`,
      );
    }
    throw new WebhookVerificationError(
      "no_matching_signature",
      "no signature matches: check the signing secret or public key, and that the body is passed exactly as received (raw bytes, not re-serialised JSON)",
    );
  }
  return { id, timestamp: new Date(timestamp * 1000) };
}

/**
 * The Standard Webhooks headers httpqueue would send with `rawBody`, signed
 * with a "whsec_" secret or a "whsk_" private key (several: one signature
 * each, as during a rotation): for testing receivers without a server.
 */
export function signWebhook(
  rawBody: RawBody,
  secret: string | readonly string[],
  options?: { id?: string | undefined; timestamp?: Date | number | undefined },
): { "webhook-id": string; "webhook-timestamp": string; "webhook-signature": string } {
  const id = options?.id ?? randomUUID();
  const timestamp = Math.floor(Number(options?.timestamp ?? Date.now()) / 1000);
  const secrets = typeof secret === "string" ? [secret] : secret;
  return {
    "webhook-id": id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": signatureHeader(secrets, id, timestamp, toBuffer(rawBody)),
  };
}

function verificationKeys(key: WebhookKey): VerificationKey[] {
  // Plain JavaScript callers may pass undefined from an unset variable.
  const given: unknown = key;
  const list: readonly unknown[] = Array.isArray(given) ? given : [given];
  if (list.length === 0) {
    throw new WebhookVerificationError("invalid_secret", "no key was given: pass the signing secret or public key");
  }
  return list.map((k, i) => {
    try {
      return decodeVerificationKey(k as string);
    } catch (err) {
      const which = list.length > 1 ? `key ${i + 1} of ${list.length}: ` : "";
      throw new WebhookVerificationError("invalid_secret", which + errorMessage(err), { cause: err });
    }
  });
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
