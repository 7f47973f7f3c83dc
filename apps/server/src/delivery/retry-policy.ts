import type { AttemptOutcome } from "./http-client.js";

// One home for what an attempt's outcome means: what counts as success,
// which failures cannot be retried, when Retry-After applies, how long to
// wait before the next attempt, and what the answer says of the endpoint as
// a whole (gone, asking for a pause, or overloaded).

export interface RetryPolicy {
  /** Delays before the 2nd, 3rd, ... attempt, in ms; the last one repeats. */
  schedule: readonly number[];
  jitter: number;
  retryAfterMaxMs: number;
}

export type NextStep = { kind: "retry"; at: Date } | { kind: "failed" } | { kind: "expired" };

export interface FailedAttempt {
  /** 1 for the first attempt. */
  attemptNumber: number;
  maxAttempts: number;
  /** When the attempt ended. */
  now: Date;
  expiresAt: Date;
  /** From a Retry-After header of a 429 or 503 answer. */
  retryAfterMs?: number | undefined;
}

/**
 * What follows a failed attempt: another one after the scheduled delay (with
 * jitter, and no sooner than a bounded Retry-After), or nothing, because the
 * attempts are used up (failed) or the next one would fall past the event's
 * time to live (expired).
 */
export function nextStep(policy: RetryPolicy, attempt: FailedAttempt, random: () => number = Math.random): NextStep {
  if (attempt.attemptNumber >= attempt.maxAttempts) return { kind: "failed" };
  const scheduled = policy.schedule[Math.min(attempt.attemptNumber, policy.schedule.length) - 1] ?? 0;
  let delay = scheduled * (1 + policy.jitter * (2 * random() - 1));
  if (attempt.retryAfterMs !== undefined) {
    delay = Math.max(delay, Math.min(attempt.retryAfterMs, policy.retryAfterMaxMs));
  }
  const at = new Date(attempt.now.getTime() + Math.round(delay));
  if (at.getTime() > attempt.expiresAt.getTime()) return { kind: "expired" };
  return { kind: "retry", at };
}

/**
 * Parses a Retry-After value (seconds, or an HTTP date) into ms from `now`;
 * undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | undefined, now: Date): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now.getTime());
}

/** A 2xx answer; anything else (3xx included: redirects are not followed) is a failure. */
export function isSuccess(statusCode: number | undefined): boolean {
  return statusCode !== undefined && statusCode >= 200 && statusCode < 300;
}

/** Answers whose Retry-After header sets the earliest next attempt, and pauses the whole endpoint. */
const HONOURS_RETRY_AFTER = new Set([429, 503]);
/** Answers that, without Retry-After, slow the endpoint's pace down. */
const OVERLOADED = new Set([429, 502, 503, 504]);
/** The endpoint is gone for good: the webhook is deactivated. */
const GONE = 410;

/** What an answer says of the endpoint, beyond its one delivery. */
export type EndpointSignal =
  /** 410 Gone: deactivate the webhook. */
  | { kind: "gone" }
  /** 429 or 503 with Retry-After: no request to it before `until` (bounded by RETRY_AFTER_MAX). */
  | { kind: "pause"; until: Date }
  /** 429, 502, 503 or 504 without Retry-After: slow down. */
  | { kind: "slow" }
  /** A 2xx. */
  | { kind: "ok" };

export interface Verdict {
  /** The delivery's status after the attempt. */
  status: "succeeded" | "retrying" | "failed" | "expired";
  /** When status is "retrying". */
  nextAttemptAt: Date | null;
  /** Why the attempt failed; null when it succeeded. */
  errorMessage: string | null;
  /** What the answer says of the endpoint; undefined: nothing (an ordinary failure). */
  endpoint?: EndpointSignal | undefined;
}

/**
 * What an attempt's outcome means for its delivery: done, another attempt
 * (when), or no more (attempts used up, past the event's time to live, or a
 * failure that cannot be retried: the destination is refused).
 */
export function judge(
  policy: RetryPolicy,
  outcome: AttemptOutcome,
  attempt: Omit<FailedAttempt, "now" | "retryAfterMs">,
  now = new Date(),
): Verdict {
  const code = outcome.statusCode;
  if (isSuccess(code))
    return { status: "succeeded", nextAttemptAt: null, errorMessage: null, endpoint: { kind: "ok" } };
  const errorMessage = outcome.error ?? `receiver answered HTTP ${code ?? 0}`;
  if (outcome.blocked) return { status: "failed", nextAttemptAt: null, errorMessage };
  if (code === GONE) return { status: "failed", nextAttemptAt: null, errorMessage, endpoint: { kind: "gone" } };
  const retryAfterMs =
    code !== undefined && HONOURS_RETRY_AFTER.has(code) ? parseRetryAfter(outcome.retryAfter, now) : undefined;
  let endpoint: EndpointSignal | undefined;
  if (retryAfterMs !== undefined) {
    endpoint = { kind: "pause", until: new Date(now.getTime() + Math.min(retryAfterMs, policy.retryAfterMaxMs)) };
  } else if (code !== undefined && OVERLOADED.has(code)) {
    endpoint = { kind: "slow" };
  }
  const step = nextStep(policy, { ...attempt, now, retryAfterMs });
  return step.kind === "retry"
    ? { status: "retrying", nextAttemptAt: step.at, errorMessage, endpoint }
    : { status: step.kind, nextAttemptAt: null, errorMessage, endpoint };
}
