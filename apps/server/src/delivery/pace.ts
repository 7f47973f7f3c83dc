import type { PostponeReason } from "../observability/metrics.js";

/**
 * How fast a runner may send to its webhook: the webhook's rate limit, the
 * pace it was slowed to because the receiver was overloaded, and a pause the
 * receiver asked for. Only the server that holds the webhook (its row in
 * webhook_runners) sends to it, so this state lives in that runner; it is
 * read from the webhook's row when a runner takes the webhook and written
 * back when it lets go, so that the next runner, on any server, goes on from
 * it (no burst at a hand-over).
 */
export interface PaceState {
  /** No request before then (ms since the epoch); null: not paused. */
  pausedUntil: number | null;
  /** Requests a second the receiver was slowed to; null: not slowed. */
  pace: number | null;
  /** The rate limit's next free slot (ms since the epoch); null: now. */
  nextSendAt: number | null;
  /**
   * When the requests of the last second started (ms since the epoch, oldest
   * first), under a rate limit: the next runner counts them too, so that a
   * hand-over never lets one more than the limit start within a second.
   */
  recentSends?: number[] | null;
}

/** The slowest pace: one request a second. */
export const MIN_PACE = 1;
/** A pace above this (with no rate limit below it) is no longer a limit. */
export const PACE_LIFTED = 1_000;
/** Halve at most once in this long: the answers to requests sent at the old pace come in together. */
const HALVING_MS = 1_000;
/** Each success raises the pace by this share of itself (at least one request a second). */
const RECOVERY_STEP = 0.1;

export class Pace {
  /** Requests a second; 0: no limit. Set from the webhook's row as deliveries are read. */
  rateLimit = 0;
  private pausedUntil: number;
  private pace: number | null;
  private nextSendAt: number;
  private lastHalving = -Infinity;
  /** Requests started in the current one-second bucket and the one before: the rate being slowed from. */
  private bucketStart = -Infinity;
  private bucketCount = 0;
  private previousCount = 0;
  /**
   * Start times of the requests of the last second, oldest first, from
   * `recentHead` on: the spacing lets a request that started late be
   * followed by the next one on its time, which alone would allow one
   * request more than the rate limit within a second.
   */
  private recent: number[] = [];
  private recentHead = 0;

  constructor(state: PaceState) {
    this.pausedUntil = state.pausedUntil ?? 0;
    this.pace = state.pace;
    this.nextSendAt = state.nextSendAt ?? 0;
    this.recent = [...(state.recentSends ?? [])];
  }

  /** Requests a second allowed now; Infinity: no limit. */
  rate(): number {
    return Math.min(this.rateLimit > 0 ? this.rateLimit : Infinity, this.pace ?? Infinity);
  }

  /** How long the next request must wait, and why; undefined: it may start now. */
  hold(now: number): { ms: number; reason: PostponeReason } | undefined {
    if (this.pausedUntil > now) return { ms: this.pausedUntil - now, reason: "paused" };
    if (Number.isFinite(this.rate()) && this.nextSendAt > now) {
      return { ms: this.nextSendAt - now, reason: "rate_limit" };
    }
    const windowFreeAt = this.windowFreeAt(now);
    if (windowFreeAt > now) return { ms: windowFreeAt - now, reason: "rate_limit" };
    return undefined;
  }

  /** When the last second's requests leave room for one more under the rate limit (now or earlier: there is room). */
  private windowFreeAt(now: number): number {
    this.forgetOlderThanASecond(now);
    if (this.rateLimit <= 0 || this.recent.length - this.recentHead < this.rateLimit) return 0;
    // The request that must leave the window first: rateLimit requests back from the next one.
    return (this.recent[this.recent.length - this.rateLimit] ?? 0) + 1000;
  }

  /** Drops the start times more than a second old from the window. */
  private forgetOlderThanASecond(now: number): void {
    while (this.recentHead < this.recent.length && (this.recent[this.recentHead] ?? 0) <= now - 1000) this.recentHead++;
    if (this.recentHead > 1024 && this.recentHead * 2 > this.recent.length) {
      this.recent = this.recent.slice(this.recentHead);
      this.recentHead = 0;
    }
  }

  /** The start times of the last second; null: none (or no rate limit). */
  private lastSecondStarts(now: number): number[] | null {
    if (this.rateLimit <= 0) return null;
    this.forgetOlderThanASecond(now);
    const starts = this.recent.slice(this.recentHead);
    return starts.length > 0 ? starts : null;
  }

  /** A request starts now: the next one waits its turn. */
  take(now: number): void {
    const rate = this.rate();
    if (Number.isFinite(rate)) {
      // A timer that fired a little late does not push the schedule back (the rate would drift
      // below the limit); after a longer gap, the schedule starts again from now (no burst).
      const interval = 1000 / rate;
      this.nextSendAt = (now - this.nextSendAt < interval ? this.nextSendAt : now) + interval;
    }
    if (this.rateLimit > 0) {
      this.forgetOlderThanASecond(now);
      this.recent.push(now);
    }
    if (now - this.bucketStart >= 1000) {
      this.previousCount = now - this.bucketStart < 2000 ? this.bucketCount : 0;
      this.bucketStart = now;
      this.bucketCount = 0;
    }
    this.bucketCount++;
  }

  /** Requests started in the last second, about (the bucket before counts for the part of it still in that second). */
  private lastSecond(now: number): number {
    const age = now - this.bucketStart;
    if (age >= 2000) return 0;
    if (age >= 1000) return this.bucketCount * Math.max(0, 1 - (age - 1000) / 1000);
    return this.bucketCount + this.previousCount * (1 - age / 1000);
  }

  /** The receiver asked for a pause (Retry-After). */
  pause(until: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, until);
  }

  /**
   * The receiver is overloaded: halve the pace; when not yet slowed, from the
   * rate of the last second (no more than the rate limit).
   */
  slow(now: number): void {
    if (now - this.lastHalving < HALVING_MS) return;
    this.lastHalving = now;
    const sent = Math.max(this.lastSecond(now), MIN_PACE);
    const from = this.pace ?? Math.min(this.rate(), sent);
    this.pace = Math.max(MIN_PACE, from / 2);
  }

  /** A request succeeded: the pace recovers a step; once above the rate limit (or PACE_LIFTED), it is lifted. */
  ok(): void {
    if (this.pace === null) return;
    this.pace += Math.max(1, this.pace * RECOVERY_STEP);
    if (this.pace >= (this.rateLimit > 0 ? this.rateLimit : PACE_LIFTED)) this.pace = null;
  }

  /** What to keep on the webhook's row when letting go. */
  state(now: number): PaceState {
    return {
      pausedUntil: this.pausedUntil > now ? this.pausedUntil : null,
      pace: this.pace,
      nextSendAt: this.nextSendAt > now ? this.nextSendAt : null,
      recentSends: this.lastSecondStarts(now),
    };
  }
}
