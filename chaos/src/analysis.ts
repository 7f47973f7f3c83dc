// What the receiver's records say: events lost, delivered twice, out of
// order, too fast. Pure functions of the receipts, tested on their own.
import type { Receipt } from "./receiver.js";

const isSuccess = (r: Receipt) => typeof r.answer === "number" && r.answer >= 200 && r.answer < 300;

/** Acknowledged events (sequence numbers) that no receipt answered 2xx carries. */
export function lostEvents(acknowledged: Iterable<number>, receipts: readonly Receipt[]): number[] {
  const delivered = new Set(receipts.filter(isSuccess).map((r) => r.seq));
  return [...acknowledged].filter((seq) => !delivered.has(seq)).sort((a, b) => a - b);
}

export interface Duplicates {
  /** Deliveries (webhook-ids) the receiver answered 2xx more than once. */
  deliveries: number;
  /** 2xx answers beyond the first, summed over those deliveries. */
  extraRequests: number;
  /**
   * Of those deliveries, the ones no kill explains: the first 2xx answer and
   * the next did not have a kill (a server's exit) between them.
   */
  unexplained: number;
  /** Up to five of those: the delivery's id and when each 2xx answered request arrived. */
  unexplainedExamples: { id: string; times: number[] }[];
}

/** A delivery received again after a 2xx answer is a duplicate; a kill between the two explains it. */
export function duplicates(receipts: readonly Receipt[], killedAt: readonly number[] = []): Duplicates {
  const byId = new Map<string, number[]>();
  for (const r of receipts) {
    if (!isSuccess(r)) continue;
    const times = byId.get(r.id) ?? [];
    times.push(r.at);
    byId.set(r.id, times);
  }
  let deliveries = 0;
  let extraRequests = 0;
  let unexplained = 0;
  const unexplainedExamples: { id: string; times: number[] }[] = [];
  for (const [id, times] of byId) {
    if (times.length < 2) continue;
    deliveries++;
    extraRequests += times.length - 1;
    const [first = 0, second = 0] = times;
    if (!killedAt.some((k) => first <= k && k <= second)) {
      unexplained++;
      if (unexplainedExamples.length < 5) unexplainedExamples.push({ id, times });
    }
  }
  return { deliveries, extraRequests, unexplained, unexplainedExamples };
}

/** Events (per request path: per webhook) received under more than one webhook-id: stored twice. */
export function storedTwice(receipts: readonly Receipt[]): number {
  const ids = new Map<string, Set<string>>();
  for (const r of receipts) {
    const key = `${r.path} ${r.seq}`;
    const set = ids.get(key) ?? new Set<string>();
    set.add(r.id);
    ids.set(key, set);
  }
  return [...ids.values()].filter((set) => set.size > 1).length;
}

/**
 * Events that arrived, the first time, after a later event of the same
 * ordering key (per webhook): each key's events are pushed one after another,
 * so their sequence numbers are their push order.
 */
export function outOfOrder(receipts: readonly Receipt[]): number {
  const highest = new Map<string, number>();
  const seen = new Set<string>();
  let count = 0;
  for (const r of receipts) {
    const key = `${r.path} ${r.key}`;
    const event = `${r.path} ${r.seq}`;
    if (seen.has(event)) continue;
    seen.add(event);
    const top = highest.get(key);
    if (top !== undefined && top > r.seq) count++;
    else highest.set(key, r.seq);
  }
  return count;
}

/** The most requests that arrived within any window shorter than a second. */
export function busiestSecond(times: readonly number[]): number {
  return busiestWindow(times).count;
}

/** The busiest window shorter than a second: how many requests, and when its first one came. */
export function busiestWindow(times: readonly number[]): { count: number; start: number } {
  const sorted = [...times].sort((a, b) => a - b);
  let best = { count: 0, start: Number.NaN };
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while ((sorted[i] ?? 0) - (sorted[j] ?? 0) >= 1000) j++;
    if (i - j + 1 > best.count) best = { count: i - j + 1, start: sorted[j] ?? Number.NaN };
  }
  return best;
}

/** Milliseconds from `t` to the first receipt after it; undefined when none came. */
export function firstReceiptAfter(receipts: readonly Receipt[], t: number): number | undefined {
  let first: number | undefined;
  for (const r of receipts) if (r.at > t && (first === undefined || r.at < first)) first = r.at;
  return first === undefined ? undefined : first - t;
}

/** The q-quantile (0..1) of `values`, by the nearest-rank method; NaN when empty. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}

/**
 * The shortest time in which `n` requests started (ms; Infinity when fewer
 * came): with n = rate limit + 1, a span of 1000 ms or more means no second
 * ever held more requests than the limit.
 */
export function shortestSpan(times: readonly number[], n: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = Infinity;
  for (let i = 0; i + n - 1 < sorted.length; i++) best = Math.min(best, (sorted[i + n - 1] ?? 0) - (sorted[i] ?? 0));
  return best;
}
