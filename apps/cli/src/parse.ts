import { readFileSync } from "node:fs";
import { InvalidArgumentError } from "commander";
import { parseDuration, SignatureScheme } from "@httpqueue/sdk";

/** Option parsers: each returns the value or throws InvalidArgumentError (exit 2). */

/** "10s", "500ms", "1.5s", "2m" or "1h" → milliseconds, more than 0. */
export function parseDeadline(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) {
    throw new InvalidArgumentError(
      /^\d+$/.test(text.trim())
        ? `Give a unit, e.g. ${text.trim()}s or ${text.trim()}ms.`
        : "Use a duration such as 10s, 500ms or 2m.",
    );
  }
  if (ms <= 0) throw new InvalidArgumentError("It must be more than 0.");
  return ms;
}

/** Whole seconds, bare ("3600") or as a duration ("30s", "15m", "1h", "7d"); undefined when neither. */
function wholeSeconds(text: string): number | undefined {
  if (/^\d+$/.test(text.trim())) return Number(text);
  const ms = parseDuration(text);
  return ms === undefined || ms % 1000 !== 0 ? undefined : ms / 1000;
}

/** Whole seconds, at least 1: bare ("3600") or with a unit ("30s", "15m", "1h", "7d"). */
export function parseSeconds(text: string): number {
  const seconds = wholeSeconds(text);
  if (seconds === undefined) throw new InvalidArgumentError("Use whole seconds, or a duration such as 30s, 15m or 1h.");
  if (seconds <= 0 || !Number.isSafeInteger(seconds)) throw new InvalidArgumentError("It must be at least 1 second.");
  return seconds;
}

const MAX_OVERLAP_SECONDS = 7 * 86_400;

/** A rotation's overlap: whole seconds from 0 (none) to 7 days, bare ("3600") or with a unit ("30m", "24h", "7d"). */
export function parseOverlap(text: string): number {
  const seconds = wholeSeconds(text);
  if (seconds === undefined) throw new InvalidArgumentError("Use a duration such as 30m, 24h or 7d, or whole seconds.");
  if (seconds > MAX_OVERLAP_SECONDS) throw new InvalidArgumentError("It must be at most 7d.");
  return seconds;
}

/** "hmac-sha256" or "ed25519" → the API's SignatureScheme. */
export function parseSignatureScheme(text: string): SignatureScheme {
  switch (text.trim().toLowerCase()) {
    case "hmac-sha256":
      return SignatureScheme.SIGNATURE_SCHEME_HMAC_SHA256;
    case "ed25519":
      return SignatureScheme.SIGNATURE_SCHEME_ED25519;
    default:
      throw new InvalidArgumentError("Use hmac-sha256 or ed25519.");
  }
}

/** A whole number of at least 1. */
export function parsePositiveInt(text: string): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) {
    throw new InvalidArgumentError("It must be a whole number of at least 1.");
  }
  return Number(text);
}

/** A whole number of at least 0. */
export function parseCount(text: string): number {
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(Number(text))) {
    throw new InvalidArgumentError("It must be a whole number (0 or more).");
  }
  return Number(text);
}

/** "1s,10s,1m,1h" → [1, 10, 60, 3600] (whole seconds; a bare number is seconds). */
export function parseRetrySchedule(text: string): number[] {
  return text.split(",").map((part) => {
    const seconds = wholeSeconds(part);
    if (seconds === undefined || !Number.isSafeInteger(seconds)) {
      throw new InvalidArgumentError(`"${part.trim()}": use whole seconds such as 1s,10s,1m,1h, comma-separated.`);
    }
    return seconds;
  });
}

// A date, or a date and time with an optional offset: what Date.parse reads the same everywhere.
const ISO_8601 = /^\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?$/i;

/**
 * A point in time: a duration back from now ("24h" is 24 hours ago, "30m",
 * "7d") or an ISO 8601 time ("2026-11-28T12:00:00Z"; without an offset, local time).
 */
export function parseTimeAgo(text: string): Date {
  const ms = parseDuration(text);
  if (ms !== undefined) return new Date(Date.now() - ms);
  const trimmed = text.trim();
  const time = ISO_8601.test(trimmed) ? Date.parse(trimmed) : NaN;
  if (Number.isNaN(time)) {
    throw new InvalidArgumentError(
      "Use a duration back from now, such as 30m, 24h or 7d, or an ISO 8601 time such as 2026-11-28T12:00:00Z.",
    );
  }
  return new Date(time);
}

/** Collects repeated `--header "Name: value"` options into an object. */
export function collectHeader(text: string, previous: Record<string, string> = {}): Record<string, string> {
  const colon = text.indexOf(":");
  const name = colon === -1 ? "" : text.slice(0, colon).trim();
  if (name === "") throw new InvalidArgumentError('Expected "Name: value", e.g. "Authorization: Bearer abc".');
  return { ...previous, [name]: text.slice(colon + 1).trim() };
}

/** Collects repeated `--metadata key=value` options into an object. */
export function collectKeyValue(text: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = text.indexOf("=");
  if (eq <= 0) throw new InvalidArgumentError('Expected "key=value", e.g. "source=billing".');
  return { ...previous, [text.slice(0, eq)]: text.slice(eq + 1) };
}

const FILTER_EXAMPLE = `'{"plan":"pro","country":["DE","FR"]}'`;

/**
 * A webhook's payload filter: a JSON object, as text or `@file`. Only its
 * shape is checked here; the server checks the rest (size, values).
 */
export function parseFilter(text: string): string {
  let json = text;
  if (text.startsWith("@")) {
    const path = text.slice(1);
    try {
      json = readFileSync(path, "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw invalidArgument(`Cannot read the filter file ${path}${code ? ` (${code})` : ""}.`, err);
    }
  }
  if (json.trim() === "") {
    throw new InvalidArgumentError(
      `It is empty: give a JSON object such as ${FILTER_EXAMPLE} (to remove a webhook's filter: webhooks update --clear-filter).`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw invalidArgument(`It is not valid JSON (${reason}): give a JSON object such as ${FILTER_EXAMPLE}.`, err);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    const kind = value === null ? "null" : Array.isArray(value) ? "an array" : `a ${typeof value}`;
    throw new InvalidArgumentError(`It must be a JSON object, such as ${FILTER_EXAMPLE}, not ${kind}.`);
  }
  return json.trim();
}

function invalidArgument(message: string, cause: unknown): InvalidArgumentError {
  const err = new InvalidArgumentError(message);
  err.cause = cause;
  return err;
}
