import { status, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import type { WatchDeliveriesResponse } from "@httpqueue/proto";
import { HttpQueueError } from "./errors.js";

/** What `watchDeliveries` returns: `for await (const change of watch)`. */
export interface DeliveryWatch extends AsyncIterable<WatchDeliveriesResponse> {
  /**
   * Resolves once the server has sent its response headers: the stream is
   * live, and every change committed from then on comes through. Rejects
   * with an HttpQueueError when the stream fails (or is closed) before that.
   */
  readonly ready: Promise<void>;
  /** Cancels the stream; an iteration under way ends without an error. Safe to call twice. */
  close(): void;
}

// Messages held for a consumer that has not asked for them yet. Past this the
// stream is paused, so HTTP/2 flow control holds the server back and a watcher
// that cannot keep up is ended by the server, not by this process's memory.
const HIGH_WATER = 64;

/**
 * Turns a server stream into a DeliveryWatch. `start` opens the call, or
 * throws an HttpQueueError when it cannot start; `signal` ends it.
 */
export function deliveryWatch(
  start: () => ClientReadableStream<WatchDeliveriesResponse>,
  signal: AbortSignal | undefined,
): DeliveryWatch {
  const queue: WatchDeliveriesResponse[] = [];
  let failure: HttpQueueError | undefined;
  let ended = false;
  let stopped = false;
  let paused = false;
  let wake: (() => void) | undefined;
  let settleReady: ((err?: HttpQueueError) => void) | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    settleReady = (err) => {
      settleReady = undefined;
      if (err) reject(err);
      else resolve();
    };
  });
  // Awaiting `ready` is optional: its failure also reaches the iteration.
  ready.catch(() => undefined);

  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const finish = (err?: HttpQueueError) => {
    if (ended) return;
    ended = true;
    failure ??= err;
    signal?.removeEventListener("abort", close);
    settleReady?.(failure ?? new HttpQueueError(status.CANCELLED, "the stream ended before it was ready"));
    notify();
  };

  let call: ClientReadableStream<WatchDeliveriesResponse> | undefined;
  function close() {
    if (stopped) return;
    stopped = true;
    call?.cancel();
    finish(new HttpQueueError(status.CANCELLED, "the watch was closed"));
  }

  if (signal?.aborted) {
    stopped = true;
    finish(new HttpQueueError(status.CANCELLED, "the watch was cancelled before it started", { cause: signal.reason }));
  } else {
    try {
      call = start();
    } catch (err) {
      finish(
        err instanceof HttpQueueError
          ? err
          : new HttpQueueError(status.INVALID_ARGUMENT, `the stream could not start: ${String(err)}`, { cause: err }),
      );
    }
  }
  if (call) {
    const stream = call;
    stream.on("metadata", () => settleReady?.());
    stream.on("data", (message: WatchDeliveriesResponse) => {
      queue.push(message);
      if (queue.length >= HIGH_WATER && !paused) {
        paused = true;
        stream.pause();
      }
      notify();
    });
    // Emitted before 'end' while messages may still wait in the stream: kept
    // until they have been read. Always listened to: an unheard 'error' event throws.
    stream.on("error", (err: ServiceError) => {
      if (!stopped) failure ??= HttpQueueError.fromServiceError(err);
      if (settleReady && failure) settleReady(failure);
    });
    stream.on("end", () => {
      finish();
    });
    signal?.addEventListener("abort", close, { once: true });
  }

  async function* messages(): AsyncGenerator<WatchDeliveriesResponse, void, undefined> {
    try {
      for (;;) {
        if (stopped) return;
        const next = queue.shift();
        if (next !== undefined) {
          if (paused && queue.length < HIGH_WATER / 2) {
            paused = false;
            call?.resume();
          }
          yield next;
          continue;
        }
        if (ended) {
          if (failure) throw failure;
          return;
        }
        await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      // A consumer's `break` lands here: the call has no one left to read it.
      close();
    }
  }

  let iterator: AsyncGenerator<WatchDeliveriesResponse, void, undefined> | undefined;
  return {
    ready,
    close,
    [Symbol.asyncIterator]: () => (iterator ??= messages()),
  };
}
