import { hasLoneSurrogate, type Ordering, type RetryPolicy } from "@httpqueue/proto";
import type { OrderingValue } from "../db/schema.js";
import { OPERATOR_NAMESPACE } from "../delivery/webhook-health.js";
import { ORDERING } from "./convert.js";
import { invalidArgument } from "./errors.js";

/** Field checks. Each returns the normalised value or throws INVALID_ARGUMENT naming the field. */

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
export const NAME_MAX = 128;

/** Namespaces and event names: 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit. */
export function checkName(field: string, value: string): string {
  if (value === "") throw invalidArgument(field, "is required");
  if (value.length > NAME_MAX) throw invalidArgument(field, `must be at most ${NAME_MAX} characters`);
  if (!NAME.test(value)) {
    throw invalidArgument(
      field,
      "may contain only letters, digits, '.', '_' and '-', and must start with a letter or digit",
    );
  }
  return value;
}

/**
 * A webhook's event: a name, "*" (every event of the namespace), or a name
 * followed by ".*" (every event whose name starts with that name and a dot).
 */
export function checkEventPattern(field: string, value: string): string {
  if (value === "*") return value;
  if (value.endsWith(".*")) {
    checkName(field, value.slice(0, -2));
    if (value.length > NAME_MAX) throw invalidArgument(field, `must be at most ${NAME_MAX} characters`);
    return value;
  }
  if (value.includes("*")) {
    throw invalidArgument(field, 'may be "*" or end in ".*" ("order.*"); "*" stands nowhere else');
  }
  return checkName(field, value);
}

export const FILTER_MAX_BYTES = 4096;

/**
 * A payload filter: a JSON object of at most FILTER_MAX_BYTES, whose
 * top-level arrays (any of) hold at least one value; "" is none (null).
 */
export function checkFilter(field: string, value: string): string | null {
  if (value === "") return null;
  const size = Buffer.byteLength(value, "utf8");
  if (size > FILTER_MAX_BYTES) throw invalidArgument(field, `is ${size} bytes; the limit is ${FILTER_MAX_BYTES}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw invalidArgument(field, `must be a JSON object (${cut(message, 120)})`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw invalidArgument(field, 'must be a JSON object, e.g. {"plan": "pro", "country": ["DE", "FR"]}');
  }
  for (const [key, v] of Object.entries(parsed)) {
    if (Array.isArray(v) && v.length === 0) {
      throw invalidArgument(`${field}.${printable(key)}`, "an array (any of) must hold at least one value");
    }
  }
  checkJsonbSafe(field, value, parsed);
  // Stored as given (cast to jsonb by the database): a number keeps its digits.
  return value;
}

const URL_MAX = 2048;

export function checkUrl(field: string, value: string): string {
  if (value === "") throw invalidArgument(field, "is required");
  if (value.length > URL_MAX) throw invalidArgument(field, `must be at most ${URL_MAX} characters`);
  // The URL parser would drop some and encode others: the stored URL is the one given, so refuse them.
  if (CONTROL.test(value)) throw invalidArgument(field, "must not contain control characters");
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalidArgument(field, "must be an absolute http or https URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw invalidArgument(field, "must be an absolute http or https URL");
  }
  if (url.username !== "" || url.password !== "") {
    throw invalidArgument(field, "must not contain credentials; send them in a header instead");
  }
  return value;
}

export const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"] as const;

/** Upper-cased; empty means POST. */
export function checkMethod(field: string, value: string): string {
  if (value === "") return "POST";
  const method = value.toUpperCase();
  if (!(METHODS as readonly string[]).includes(method)) {
    throw invalidArgument(field, `must be one of ${METHODS.join(", ")}`);
  }
  return method;
}

export const DEFAULT_TIMEOUT_SECONDS = 30;

export function checkTimeout(field: string, value: number): number {
  if (!Number.isInteger(value) || value < 1 || value > 300) {
    throw invalidArgument(field, "must be between 1 and 300 seconds");
  }
  return value;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Visible ASCII, space, tab and obs-text; no CR, LF or NUL.
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** Headers the HTTP client manages, hop-by-hop headers, and our own. */
const RESERVED_HEADERS = new Set([
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "upgrade",
  "expect",
  "te",
  "trailer",
  "proxy-connection",
]);
const MAX_HEADERS = 50;
const HEADER_NAME_MAX = 256;
const HEADER_VALUE_MAX = 8192;

export function checkHeaders(field: string, headers: Record<string, string>): Record<string, string> {
  const entries = Object.entries(headers);
  if (entries.length > MAX_HEADERS) throw invalidArgument(field, `must have at most ${MAX_HEADERS} entries`);
  const seen = new Set<string>();
  for (const [name, value] of entries) {
    const lower = name.toLowerCase();
    if (!TOKEN.test(name) || name.length > HEADER_NAME_MAX) {
      throw invalidArgument(field, `"${printable(name)}" is not a valid header name`);
    }
    if (RESERVED_HEADERS.has(lower)) {
      throw invalidArgument(field, `"${name}" is set by the HTTP client and cannot be overridden`);
    }
    if (lower.startsWith("webhook-")) {
      throw invalidArgument(field, `"${name}": webhook-* headers are reserved for the webhook signature`);
    }
    if (seen.has(lower)) throw invalidArgument(field, `"${name}" appears more than once`);
    seen.add(lower);
    if (!HEADER_VALUE.test(value)) {
      throw invalidArgument(
        field,
        `the value of "${name}" contains characters not allowed in a header (CR, LF, control characters or non-Latin-1)`,
      );
    }
    if (value.length > HEADER_VALUE_MAX) {
      throw invalidArgument(field, `the value of "${name}" must be at most ${HEADER_VALUE_MAX} characters`);
    }
  }
  return headers;
}

const DESCRIPTION_MAX = 1024;
/** C0 and C1 control characters and DEL. */
// eslint-disable-next-line no-control-regex -- control characters are what it matches
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** The same, but for tab, line feed and carriage return, which free text may hold. */
// eslint-disable-next-line no-control-regex -- control characters are what it matches
const TEXT_CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;

/**
 * Free text (descriptions, metadata): no control characters but tab and line
 * breaks, so that what is shown in a terminal cannot carry escape sequences.
 */
export function checkText(field: string, value: string, max = DESCRIPTION_MAX): string {
  if (value.length > max) throw invalidArgument(field, `must be at most ${max} characters`);
  if (value.includes("\u0000")) throw invalidArgument(field, "must not contain NUL characters");
  if (TEXT_CONTROL.test(value)) throw invalidArgument(field, "must not contain control characters");
  return value;
}

/** A JSON document of at most `maxBytes` bytes (UTF-8). */
export function checkPayload(field: string, value: string, maxBytes: number): string {
  if (value === "") throw invalidArgument(field, "is required: a JSON document");
  const size = Buffer.byteLength(value, "utf8");
  if (size > maxBytes) throw invalidArgument(field, `is ${size} bytes; the limit is ${maxBytes}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    // It may quote the input: cut short here; made safe to send where every error becomes a status.
    throw invalidArgument(field, `must be valid JSON (${cut(message, 120)})`);
  }
  checkJsonbSafe(field, value, parsed);
  return value;
}

/** What JSON.parse takes and PostgreSQL's jsonb may not: `\u0000`, half a surrogate pair, numbers past a double or numeric. */
const MAYBE_NOT_JSONB = /\\u|\d[eE][+-]?\d{3}|\d{300}/;
/** Most digits a jsonb number keeps after the decimal point (PostgreSQL's NUMERIC_DSCALE_MAX). */
const NUMERIC_SCALE_MAX = 16383;
/** PostgreSQL refuses an exponent this large or larger, either way, whatever the digits (INT_MAX / 2). */
const NUMERIC_EXPONENT_LIMIT = 1073741823;
/** A string (passed over) or a number of JSON text, with its fraction's digits and its exponent. */
const JSON_STRING_OR_NUMBER = /"(?:[^"\\]|\\.)*"|-?\d+(?:\.(\d+))?(?:[eE]([+-]?\d+))?/g;

/**
 * Whether a number of the (valid) JSON text is one jsonb cannot hold though
 * JavaScript reads it as a finite number (1e-16384 and 0e2000000000 are 0):
 * more digits after the decimal point, counting the exponent, than jsonb
 * keeps, or an exponent past its limit.
 */
function hasUnstorableNumber(text: string): boolean {
  for (const [token, fraction, exponent] of text.matchAll(JSON_STRING_OR_NUMBER)) {
    if (token.startsWith('"') || (exponent === undefined && fraction === undefined)) continue;
    const e = Number(exponent ?? 0);
    if (Math.abs(e) >= NUMERIC_EXPONENT_LIMIT || (fraction?.length ?? 0) - e > NUMERIC_SCALE_MAX) return true;
  }
  return false;
}

/**
 * Refuses JSON that jsonb cannot hold (payloads are matched against filters
 * as jsonb, and filters are stored as jsonb): looked for only when the text
 * has an escape or a long number, so that ordinary JSON costs one regex test.
 */
function checkJsonbSafe(field: string, text: string, parsed: unknown): void {
  if (!MAYBE_NOT_JSONB.test(text)) return;
  const problem = (value: unknown): string | undefined => {
    if (typeof value === "string") {
      if (value.includes("\u0000")) return "must not contain \\u0000 (PostgreSQL cannot store it)";
      if (hasLoneSurrogate(value)) return "must not contain half of a surrogate pair (\\ud800 to \\udfff alone)";
    } else if (typeof value === "number") {
      if (!Number.isFinite(value)) return "has a number too large to store";
    } else if (Array.isArray(value)) {
      for (const item of value) {
        const found = problem(item);
        if (found !== undefined) return found;
      }
    } else if (typeof value === "object" && value !== null) {
      for (const [key, item] of Object.entries(value)) {
        const found = problem(key) ?? problem(item);
        if (found !== undefined) return found;
      }
    }
    return undefined;
  };
  const found =
    problem(parsed) ??
    (hasUnstorableNumber(text)
      ? "has a number PostgreSQL cannot store (too many digits after the decimal point, or too large an exponent)"
      : undefined);
  if (found !== undefined) throw invalidArgument(field, found);
}

/** 0 takes the default. */
export function checkTtl(field: string, value: number, defaultSeconds: number, maxSeconds: number): number {
  if (value === 0) return defaultSeconds;
  if (!Number.isInteger(value) || value < 1 || value > maxSeconds) {
    throw invalidArgument(field, `must be between 1 and ${maxSeconds} seconds (0 for the default, ${defaultSeconds})`);
  }
  return value;
}

const MAX_METADATA = 32;
const METADATA_KEY_MAX = 128;
const METADATA_VALUE_MAX = 1024;

export function checkMetadata(field: string, metadata: Record<string, string>): Record<string, string> {
  const entries = Object.entries(metadata);
  if (entries.length > MAX_METADATA) throw invalidArgument(field, `must have at most ${MAX_METADATA} entries`);
  for (const [key, value] of entries) {
    if (key === "") throw invalidArgument(field, "keys must not be empty");
    checkText(`${field}["${printable(key)}"]`, key, METADATA_KEY_MAX);
    checkText(`${field}["${printable(key)}"]`, value, METADATA_VALUE_MAX);
  }
  return metadata;
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/** Empty means none. */
export function checkIdempotencyKey(field: string, value: string): string | null {
  if (value === "") return null;
  if (!IDEMPOTENCY_KEY.test(value)) {
    throw invalidArgument(field, "must be 1 to 255 visible ASCII characters (no spaces)");
  }
  return value;
}

/** A namespace callers may push to. */
export function checkPushNamespace(field: string, value: string): string {
  const namespace = checkName(field, value);
  if (namespace === OPERATOR_NAMESPACE) {
    throw invalidArgument(field, `"${OPERATOR_NAMESPACE}" is reserved for the server's own events`);
  }
  return namespace;
}

const ORDERING_KEY = /^[\x21-\x7e]{0,255}$/;

/** Empty is a key too (the one of events pushed without). */
export function checkOrderingKey(field: string, value: string): string {
  if (!ORDERING_KEY.test(value))
    throw invalidArgument(field, "must be at most 255 visible ASCII characters (no spaces)");
  return value;
}

export const MAX_POLICY_ATTEMPTS = 50;
const MAX_DELAY_SECONDS = 24 * 3600;

/** A webhook's retry policy: null fields take the server's defaults (an unset or empty policy: both). */
export function checkRetryPolicy(
  field: string,
  policy: RetryPolicy | undefined,
): { retrySchedule: number[] | null; maxAttempts: number | null } {
  if (policy === undefined) return { retrySchedule: null, maxAttempts: null };
  const { scheduleSeconds, maxAttempts } = policy;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 0 || maxAttempts > MAX_POLICY_ATTEMPTS) {
    throw invalidArgument(
      `${field}.max_attempts`,
      `must be between 1 and ${MAX_POLICY_ATTEMPTS} (0 for the server's default)`,
    );
  }
  if (scheduleSeconds.length > MAX_POLICY_ATTEMPTS) {
    throw invalidArgument(`${field}.schedule_seconds`, `must have at most ${MAX_POLICY_ATTEMPTS} delays`);
  }
  for (const [i, delay] of scheduleSeconds.entries()) {
    if (!Number.isInteger(delay) || delay < 1 || delay > MAX_DELAY_SECONDS) {
      throw invalidArgument(
        `${field}.schedule_seconds[${i}]`,
        `must be between 1 and ${MAX_DELAY_SECONDS} seconds (24 h); got ${delay}`,
      );
    }
  }
  return {
    retrySchedule: scheduleSeconds.length === 0 ? null : [...scheduleSeconds],
    maxAttempts: maxAttempts === 0 ? null : maxAttempts,
  };
}

export const MAX_RATE_LIMIT = 100_000;
export const MAX_IN_FLIGHT = 1_000;

/** A whole number from 0 to `max`, 0 meaning `zero`. */
export function checkLimit(field: string, value: number, max: number, zero: string): number {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw invalidArgument(field, `must be between 0 and ${max} (0: ${zero})`);
  }
  return value;
}

/** API enum → stored ordering: the inverse of convert.ts's map. */
const ORDERINGS = new Map(Object.entries(ORDERING).map(([stored, api]) => [api, stored as OrderingValue]));

export function checkOrdering(field: string, value: Ordering): OrderingValue {
  const ordering = ORDERINGS.get(value);
  if (ordering === undefined) throw invalidArgument(field, "must be ORDERING_NONE or ORDERING_BY_KEY");
  return ordering;
}

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function checkId(field: string, value: string): string {
  if (value === "") throw invalidArgument(field, "is required");
  if (!UUID.test(value)) throw invalidArgument(field, `"${printable(value)}" is not a valid id (a UUID)`);
  return value.toLowerCase();
}

/** Cut to `max` characters. */
const cut = (value: string, max: number) => (value.length > max ? `${value.slice(0, max)}…` : value);

/**
 * User input quoted in messages: cut short, quotes, control characters and
 * lone surrogates escaped (JSON.stringify escapes them all).
 */
export function printable(value: string, max = 64): string {
  return JSON.stringify(cut(value, max)).slice(1, -1);
}

/** A time given in a request: a real date, not in the future; undefined when not set and not required. */
export function checkPastTime(field: string, value: Date | undefined, required: true): Date;
export function checkPastTime(field: string, value: Date | undefined, required?: false): Date | undefined;
export function checkPastTime(field: string, value: Date | undefined, required = false): Date | undefined {
  if (value === undefined) {
    if (required) throw invalidArgument(field, "is required");
    return undefined;
  }
  const time = storableTime(field, value);
  if (value.getTime() > Date.now()) throw invalidArgument(field, `is in the future (${value.toISOString()})`);
  return time;
}

/**
 * A time PostgreSQL can take: a real date, 1970 at the earliest (nothing is
 * older here; far older times, up to 271,821 BC, it could not take).
 */
function storableTime(field: string, value: Date): Date {
  if (Number.isNaN(value.getTime())) throw invalidArgument(field, "is not a representable time");
  return value.getTime() < 0 ? new Date(0) : value;
}

/** An upper bound on times: undefined (no bound) past year 9999, which PostgreSQL cannot take. */
export function checkTimeBound(field: string, value: Date | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const time = storableTime(field, value);
  return time.getTime() >= Date.UTC(10_000, 0, 1) ? undefined : time;
}
