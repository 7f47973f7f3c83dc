import { InvalidArgumentError } from "commander";

/** Option parsers: each returns the value or throws InvalidArgumentError (exit 2). */

const DURATION_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/** "10s", "500ms", "1.5s", "2m" or "1h" → milliseconds. */
export function parseDeadline(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  if (!match) {
    throw new InvalidArgumentError(
      /^\d+$/.test(text.trim())
        ? `Give a unit, e.g. ${text.trim()}s or ${text.trim()}ms.`
        : "Use a duration such as 10s, 500ms or 2m.",
    );
  }
  const ms = Number(match[1]) * DURATION_MS[match[2] as keyof typeof DURATION_MS];
  if (ms <= 0) throw new InvalidArgumentError("It must be more than 0.");
  return ms;
}

const TTL_SECONDS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;

/** Seconds, bare ("3600") or with a unit ("30s", "15m", "1h", "7d"). */
export function parseTtl(text: string): number {
  const match = /^(\d+)(s|m|h|d)?$/.exec(text.trim());
  if (!match) throw new InvalidArgumentError("Use seconds, or a duration such as 15m, 1h or 7d.");
  const seconds = Number(match[1]) * TTL_SECONDS[(match[2] ?? "s") as keyof typeof TTL_SECONDS];
  if (seconds <= 0 || !Number.isSafeInteger(seconds)) throw new InvalidArgumentError("It must be at least 1 second.");
  return seconds;
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

const DELAY_SECONDS = { s: 1, m: 60, h: 3600 } as const;

/** "1s,10s,1m,1h" → [1, 10, 60, 3600] (seconds; a bare number is seconds). */
export function parseRetrySchedule(text: string): number[] {
  return text.split(",").map((part) => {
    const match = /^(\d+)(s|m|h)?$/.exec(part.trim());
    if (!match)
      throw new InvalidArgumentError(`"${part.trim()}": use durations such as 1s,10s,1m,1h, comma-separated.`);
    return Number(match[1]) * DELAY_SECONDS[(match[2] ?? "s") as keyof typeof DELAY_SECONDS];
  });
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
