import type { Logger } from "./logger.js";

/**
 * Wraps a database read for the metrics endpoint so that scrapes cannot
 * hammer the database: at most one read runs at a time (concurrent scrapes
 * share it) and a result, or a failure, is reused for `maxAgeMs`. A failed
 * read yields undefined: the gauges then show nothing rather than stale
 * numbers.
 */
export function throttle<T>(read: () => Promise<T>, maxAgeMs: number, logger: Logger): () => Promise<T | undefined> {
  let last: { at: number; value: T | undefined } | undefined;
  let running: Promise<T | undefined> | undefined;
  let failing = false;

  const refresh = async (): Promise<T | undefined> => {
    let value: T | undefined;
    try {
      value = await read();
      if (failing) logger.info("metrics: the database can be read again");
      failing = false;
    } catch (err) {
      if (!failing) logger.warn({ err }, "metrics: cannot read queue depth and webhook counts from the database");
      failing = true;
    }
    last = { at: performance.now(), value };
    return value;
  };

  return () => {
    if (last && performance.now() - last.at < maxAgeMs) return Promise.resolve(last.value);
    running ??= refresh().finally(() => {
      running = undefined;
    });
    return running;
  };
}
