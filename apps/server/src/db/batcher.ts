import { isDatabaseUnavailable, OverloadedError } from "../errors.js";

/**
 * Group commit for one kind of statement: concurrent callers' items go into
 * one statement (one transaction, one commit) instead of one each. Nothing
 * waits on a timer: an item starts a batch at once (at the end of the current
 * turn of the event loop) when fewer than `maxConcurrent` batches run;
 * otherwise it joins the next batch, which starts as soon as one finishes. A
 * lone caller therefore pays nothing, and under load a batch holds whatever
 * arrived while the previous ones ran.
 *
 * Each caller's promise settles after its batch: resolved once it committed.
 * When a batch fails for a reason other than an unreachable database, each of
 * its items runs again alone, so that one bad item fails only its own caller.
 */
export interface BatcherOptions<I, O> {
  /**
   * One statement for all the items; one result per item, in the same order.
   * It throws only when the statement failed (and so changed nothing): the
   * items of a failed batch run again, alone.
   */
  run(items: I[]): Promise<O[]>;
  /** Most items per batch. */
  maxBatchSize: number;
  /** Most batches running at once. */
  maxConcurrent: number;
  /** Size of an item (e.g. bytes of payload); a batch holds at most `maxBatchWeight`, and always one item. */
  weight?: (item: I) => number;
  maxBatchWeight?: number;
  /**
   * Items with the same key never share a batch nor run at the same time: the
   * later one waits until the earlier one's batch finished.
   */
  key?: (item: I) => string;
  /**
   * Most weight (see `weight`) waiting to run; an item that would go past it
   * is refused at once with an OverloadedError, so that a slow database
   * cannot make the queue grow without bound.
   */
  maxQueuedWeight?: number;
}

export interface Batcher<I, O> {
  add(item: I): Promise<O>;
}

interface Pending<I, O> {
  item: I;
  resolve(value: O): void;
  reject(reason: unknown): void;
}

export function createBatcher<I, O>(options: BatcherOptions<I, O>): Batcher<I, O> {
  const queue: Pending<I, O>[] = [];
  let queuedWeight = 0;
  let running = 0;
  let scheduled = false;
  /** Keys of the items in running batches. */
  const busy = new Set<string>();

  /** Takes the next batch off the queue (empty when every queued item waits for a busy key). */
  function take(): Pending<I, O>[] {
    const batch: Pending<I, O>[] = [];
    const keys = new Set<string>();
    const skipped: Pending<I, O>[] = [];
    let weight = 0;
    while (queue.length > 0 && batch.length < options.maxBatchSize) {
      const next = queue[0] as Pending<I, O>;
      const w = options.weight?.(next.item) ?? 0;
      if (batch.length > 0 && options.maxBatchWeight !== undefined && weight + w > options.maxBatchWeight) break;
      queue.shift();
      const key = options.key?.(next.item);
      if (key !== undefined && (keys.has(key) || busy.has(key))) {
        skipped.push(next);
        continue;
      }
      if (key !== undefined) keys.add(key);
      weight += w;
      queuedWeight -= w;
      batch.push(next);
    }
    queue.unshift(...skipped);
    for (const key of keys) busy.add(key);
    return batch;
  }

  async function runBatch(batch: Pending<I, O>[]): Promise<void> {
    let results: O[];
    try {
      results = await options.run(batch.map((p) => p.item));
    } catch (err) {
      // An unreachable database fails every item alike (and may have committed).
      if (batch.length === 1 || isDatabaseUnavailable(err)) {
        for (const p of batch) p.reject(err);
        return;
      }
      // Alone, each item succeeds or fails on its own merits.
      await Promise.all(batch.map((p) => runBatch([p])));
      return;
    }
    if (results.length !== batch.length) {
      // The statement ran: running its items again could apply them twice.
      const err = new Error(`a batch of ${batch.length} items returned ${results.length} results`);
      for (const p of batch) p.reject(err);
      return;
    }
    batch.forEach((p, i) => {
      p.resolve(results[i] as O);
    });
  }

  function pump(): void {
    scheduled = false;
    while (running < options.maxConcurrent && queue.length > 0) {
      const batch = take();
      // Everything queued waits for a running batch, which pumps again when it ends.
      if (batch.length === 0) return;
      running++;
      void runBatch(batch).finally(() => {
        running--;
        if (options.key) for (const p of batch) busy.delete(options.key(p.item));
        schedule();
      });
    }
  }

  function schedule(): void {
    if (scheduled || queue.length === 0 || running >= options.maxConcurrent) return;
    scheduled = true;
    // Items that arrive in the same turn of the event loop share the batch.
    setImmediate(pump);
  }

  return {
    add(item) {
      const w = options.weight?.(item) ?? 0;
      if (options.maxQueuedWeight !== undefined && queue.length > 0 && queuedWeight + w > options.maxQueuedWeight) {
        return Promise.reject(new OverloadedError(`more than ${options.maxQueuedWeight} waiting to be stored`));
      }
      queuedWeight += w;
      return new Promise<O>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        schedule();
      });
    },
  };
}
