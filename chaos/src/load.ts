// The pushing side, as a careful client pushes: every event with an
// idempotency key, a failed push retried (on the next server, when there are
// several) until it is acknowledged or the deadline passes.
import { HttpQueueError, type HttpQueueClient } from "@httpqueue/sdk";
import { sleep } from "./clock.js";

export interface PushOptions {
  /** Push n's first attempt goes to clients[n % length], each retry to the next one. */
  clients: readonly HttpQueueClient[];
  total: number;
  /** Events offered per second: event n is pushed at start + n / rate at the earliest. */
  rate: number;
  /**
   * Event n has key `k<n % keys>`; a key's events are pushed one after
   * another, so that their sequence numbers are their push order.
   */
  keys: number;
  namespace: string;
  /** The event name of event n. */
  event: (seq: number) => string;
  /** Send the key as the ordering key (for webhooks ordered by key). */
  orderingKeys?: boolean;
  ttlSeconds?: number;
  /** Pushes not acknowledged by then are given up (reported, never waited for). */
  deadlineAt: number;
  callDeadlineMs?: number;
}

export interface PushLoad {
  /** Sequence number → when it was acknowledged. */
  acknowledged: Map<number, number>;
  /** Acknowledgements that said duplicate: an earlier attempt had stored the event, its answer was lost. */
  answeredDuplicate(): number;
  /** Failed push attempts by status code name. */
  failures: Map<string, number>;
  /** When each failed attempt failed, and with what. */
  failureLog: { at: number; code: string }[];
  /** Events given up at the deadline, never acknowledged. */
  abandoned: number[];
  /** Resolves when every event has been acknowledged or given up. */
  finished: Promise<void>;
}

export function keyOf(seq: number, keys: number): string {
  return `k${seq % keys}`;
}

export function startPushing(options: PushOptions): PushLoad {
  const { clients, total, rate, keys, namespace } = options;
  const acknowledged = new Map<number, number>();
  const failures = new Map<string, number>();
  const failureLog: { at: number; code: string }[] = [];
  const abandoned: number[] = [];
  let duplicates = 0;
  const start = Date.now();

  const pushOne = async (seq: number) => {
    const key = keyOf(seq, keys);
    const request = {
      namespace,
      event: options.event(seq),
      payload: JSON.stringify({ seq, key }),
      idempotencyKey: `chaos-${seq}`,
      ...(options.orderingKeys ? { orderingKey: key } : {}),
      ...(options.ttlSeconds ? { ttlSeconds: options.ttlSeconds } : {}),
    };
    for (let attempt = 0; ; attempt++) {
      if (Date.now() > options.deadlineAt) {
        abandoned.push(seq);
        return;
      }
      const client = clients[(seq + attempt) % clients.length];
      if (!client) throw new Error("no client to push with");
      try {
        const answer = await client.pushEvent(request, { deadlineMs: options.callDeadlineMs ?? 5_000 });
        acknowledged.set(seq, Date.now());
        if (answer.duplicate) duplicates++;
        return;
      } catch (err) {
        const code = err instanceof HttpQueueError ? err.codeName : `not a gRPC error (${String(err)})`;
        failures.set(code, (failures.get(code) ?? 0) + 1);
        failureLog.push({ at: Date.now(), code });
        await sleep(100);
      }
    }
  };

  const worker = async (k: number) => {
    for (let seq = k; seq < total; seq += keys) {
      const due = start + (seq * 1000) / rate;
      if (due > Date.now()) await sleep(due - Date.now());
      await pushOne(seq);
    }
  };
  const finished = Promise.all(Array.from({ length: Math.min(keys, total) }, (_, k) => worker(k))).then(() => {
    abandoned.sort((a, b) => a - b);
  });
  return {
    acknowledged,
    answeredDuplicate: () => duplicates,
    failures,
    failureLog,
    abandoned,
    finished,
  };
}
