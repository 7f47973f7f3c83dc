import type { Logger } from "../observability/logger.js";
import type { Deliver } from "./deliver.js";

export interface DispatcherOptions {
  deliver: Deliver;
  /** Attempts running at once. */
  concurrency: number;
  /** Deliveries waiting for a slot; past it, pushes leave their first attempts to the queue. */
  maxWaiting: number;
  /**
   * A delivery not started this long after it was handed over is left to its
   * job (made due at once), which would otherwise run while it still might.
   */
  startWithinMs: number;
  /** Makes these deliveries' first-attempt jobs due now. */
  requeue(deliveryIds: string[]): Promise<void>;
  /** How long stop() lets running attempts finish before aborting them. */
  shutdownTimeoutMs: number;
  logger: Logger;
}

export interface Dispatcher {
  /** Whether a push may hand its first attempts over (see `NewEvent.directGraceMs`). */
  hasRoom(): boolean;
  /** First attempts of deliveries whose jobs were queued for later, as a safety net. */
  dispatch(deliveryIds: string[]): void;
  /** Lets running attempts finish (bounded); the waiting ones go back to the queue. */
  stop(): Promise<void>;
}

interface Waiting {
  deliveryId: string;
  handedAt: number;
}

/**
 * Makes the first attempt of each delivery of an event this server stored,
 * without a round trip through the queue: the push's statement queued their
 * jobs for later (the grace), so a crash loses nothing (the jobs run then),
 * and the attempt's record removes its job. Anything that keeps an attempt
 * from being made here (too long a wait, an error, a stop) makes its job due
 * at once instead.
 */
export function createDispatcher(options: DispatcherOptions): Dispatcher {
  const { logger } = options;
  const waiting: Waiting[] = [];
  const running = new Set<Promise<void>>();
  const abort = new AbortController();
  let stopped = false;

  const requeue = (deliveryIds: string[], why: string) => {
    if (deliveryIds.length === 0) return Promise.resolve();
    return options.requeue(deliveryIds).then(
      () => {
        logger.debug({ deliveries: deliveryIds.length, why }, "first attempts left to the queue");
      },
      (err: unknown) => {
        // Their jobs still run, when the grace ends.
        logger.warn({ err, deliveries: deliveryIds.length, why }, "could not make first-attempt jobs due now");
      },
    );
  };

  const pump = () => {
    const late: string[] = [];
    while (!stopped && running.size < options.concurrency && waiting.length > 0) {
      const next = waiting.shift();
      if (!next) break;
      if (performance.now() - next.handedAt > options.startWithinMs) {
        late.push(next.deliveryId);
        continue;
      }
      const attempt = options
        .deliver(next.deliveryId, 1, { signal: abort.signal, direct: true })
        .catch((err: unknown) => {
          logger.warn({ err, deliveryId: next.deliveryId }, "direct attempt failed; leaving it to the queue");
          return requeue([next.deliveryId], "error");
        })
        .finally(() => {
          running.delete(attempt);
          pump();
        });
      running.add(attempt);
    }
    void requeue(late, "waited too long");
  };

  return {
    hasRoom: () => !stopped && waiting.length < options.maxWaiting,
    dispatch(deliveryIds) {
      const handedAt = performance.now();
      for (const deliveryId of deliveryIds) waiting.push({ deliveryId, handedAt });
      pump();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      const left = waiting.splice(0).map((w) => w.deliveryId);
      await requeue(left, "stopping");
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, options.shutdownTimeoutMs);
      });
      await Promise.race([Promise.allSettled([...running]), deadline]);
      clearTimeout(timer);
      abort.abort();
      await Promise.allSettled([...running]);
    },
  };
}
