/**
 * Milliseconds since the epoch, with sub-millisecond resolution. Comparable
 * across processes on one machine: each derives it from the same system clock
 * (its time origin) plus a monotonic clock.
 */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
