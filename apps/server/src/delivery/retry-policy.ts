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
