// Delivery throughput: draining a backlog, and delivering while events are
// pushed continuously.
import { createDatabase } from "@httpqueue/server/dist/db/client.js";
import { MAX_STATEMENT_DELIVERIES, storeEvents } from "@httpqueue/server/dist/db/events.js";
import { now, sleep } from "./clock.js";
import { BENCH_APPLICATION_NAME, type BenchDatabase } from "./database.js";
import { answeredRate, closedLoop, createClients, type PushTarget } from "./load.js";
import { markAt, meter, perUnit, type UnitCosts } from "./meter.js";
import { backendPids, databaseCounters } from "./probes.js";
import { deliveryStatusToJSON, type HttpQueueClient } from "@httpqueue/sdk";
import type { BenchReceiver } from "./receiver.js";
import { NAMESPACE, registerWebhooks, withService, type ScenarioContext } from "./scenarios.js";

export interface DeliveryResult {
  /** Deliveries completed per second. */
  rate: number;
  deliveries: number;
  perDelivery: UnitCosts;
}

export interface BacklogResult extends DeliveryResult {
  events: number;
  /** From the commit that queued the backlog to the first and last receipt. */
  firstReceiptSeconds: number;
  seconds: number;
  /** Deliveries not in SUCCEEDED once the server stopped (should be 0). */
  notSucceeded: number;
  /** With `watch`: what the WatchDeliveries stream open during the run received. */
  watch?: WatchCount;
}

/** What a WatchDeliveries stream received. */
export interface WatchCount {
  updates: number;
  /** Updates per delivery: 2 when each delivery's creation and its success came through. */
  perDelivery: number;
  /** By the status each update left (PENDING: created). */
  byStatus: Record<string, number>;
  /** From the last receipt to the last update received. */
  lagSeconds: number;
}

/** Sequence numbers of the events for the hanging receiver start here: apart from the measured ones. */
const SLOW_SEQ = 100_000_000;

export interface BacklogShape {
  /** Events queued (for the measured webhooks). */
  events: number;
  /** Webhooks each event goes to. */
  fanout: number;
  /** Each event for a webhook of its own, on an event name of its own (fanout 1). */
  ownWebhook?: boolean;
  /** Events queued first for another webhook, whose receiver answers only after SLOW_RESPONSE_MS. */
  slowEvents?: number;
  logLevel: "warn" | "info";
  timeoutMs: number;
  /**
   * One WatchDeliveries stream, unfiltered, open (and live) before the
   * backlog is queued and read to the end: every delivery's creation and
   * change is sent to it.
   */
  watch?: boolean;
}

/**
 * `events` events, each for `fanout` webhooks (or each for a webhook of its
 * own), queued at once (one transaction, as if pushed while no worker ran);
 * the server drains them. Deliveries per second from the commit to the last
 * receipt. With `slowEvents`, deliveries to a hanging receiver are queued
 * first, in the same commit, and only the others are measured. With `watch`,
 * an unfiltered WatchDeliveries stream is open throughout, and the updates
 * it received are counted.
 */
export function backlog(ctx: ScenarioContext, options: BacklogShape): Promise<BacklogResult> {
  const { events, fanout } = options;
  const label = options.ownWebhook
    ? "wide"
    : options.slowEvents
      ? "hanging"
      : options.watch
        ? "watched"
        : `backlog${fanout}`;
  const event = label;
  return withService(ctx, `${label}_${options.logLevel}`, options.logLevel, async (running) => {
    const [first] = running.clients;
    if (!first) throw new Error("no client");
    const names = options.ownWebhook ? Array.from({ length: events }, (_, i) => `${event}.${i}`) : [event];
    if (options.ownWebhook) await registerEach(first, ctx.receiver, names);
    else await registerWebhooks(first, ctx.receiver, event, fanout);
    if (options.slowEvents) {
      await first.registerWebhook({ namespace: NAMESPACE, event: `${event}.slow`, url: `${ctx.receiver.url}/slow/` });
    }
    await ctx.receiver.reset();
    // Opened before the backlog is queued, with a channel of its own: the queuing commit's notifications reach it.
    const watcher = options.watch ? await openWatcher(running.service.address) : undefined;
    try {
      const m = meter(running, ctx.receiver);
      const before = await m.mark();
      const batches: Seeded[] = [];
      if (options.slowEvents) batches.push({ names: [`${event}.slow`], count: options.slowEvents, firstSeq: SLOW_SEQ });
      batches.push({ names, count: events, firstSeq: 0 });
      const start = await seedEvents(
        running.db,
        batches,
        ctx.payloadPad,
        Math.floor(MAX_STATEMENT_DELIVERIES / fanout),
      );
      const atStart = { ...before, cpu: m.cpu(start) };
      const expected = events * fanout;
      const deadline = start + options.timeoutMs;
      const measured = async () => {
        const { times, seqs } = await ctx.receiver.take();
        return { times: times.filter((_, i) => (seqs[i] ?? 0) < SLOW_SEQ), all: times.length };
      };
      for (;;) {
        const count = await ctx.receiver.count();
        if (count >= expected && (!options.slowEvents || (await measured()).times.length >= expected)) break;
        if (now() >= deadline) break;
        await sleep(options.slowEvents ? 50 : 10);
      }
      const end = await m.mark();
      const { times } = await measured();
      if (times.length < expected) throw new Error(`only ${times.length} of ${expected} deliveries arrived in time`);
      let firstAt = Infinity;
      let lastAt = -Infinity;
      for (const t of times) {
        firstAt = Math.min(firstAt, t);
        lastAt = Math.max(lastAt, t);
      }
      // Successes are committed after their receipt: the stream gets a moment to bring the last ones.
      const watch = watcher ? await watcher.finish(expected * 2, WATCH_SETTLE_MS, expected, lastAt) : undefined;
      // Commits once the server is gone: its backends report everything as they exit.
      await running.service.stop();
      const gone = now() + 10_000;
      while ((await backendPids(running.db.sql, running.db.name, BENCH_APPLICATION_NAME)).length > 0 && now() < gone) {
        await sleep(20);
      }
      const counters = await databaseCounters(running.db.sql, running.db.name);
      const [row] = await running.db.sql<{ n: number }[]>`
        select count(*)::int as n from webhook_deliveries d join webhook_registrations w on w.id = d.webhook_id
        where d.status <> 'succeeded' and w.event not like '%.slow'`;
      const seconds = (lastAt - start) / 1000;
      const cost = m.cost(atStart, end, counters);
      return {
        rate: expected / seconds,
        deliveries: expected,
        events,
        firstReceiptSeconds: (firstAt - start) / 1000,
        seconds,
        notSucceeded: row?.n ?? 0,
        perDelivery: perUnit(cost, expected),
        ...(watch ? { watch } : {}),
      };
    } finally {
      watcher?.close();
    }
  });
}

/** After the last receipt, the watcher waits at most this long for the updates it still expects. */
const WATCH_SETTLE_MS = 10_000;

/**
 * An unfiltered WatchDeliveries stream on a client of its own, live once this
 * resolves, read as fast as it comes. `finish` waits for `want` updates (or
 * `settleMs`), closes the stream and counts; it throws when the server ended
 * the stream (e.g. RESOURCE_EXHAUSTED: the watcher fell behind).
 */
async function openWatcher(address: string) {
  const [client] = createClients(address, 1);
  if (!client) throw new Error("no client");
  const watch = client.watchDeliveries({});
  const byStatus: Record<string, number> = {};
  let updates = 0;
  let lastAt = NaN;
  // How the stream ended, unless this side closed it.
  const state: { closing: boolean; failure?: Error } = { closing: false };
  const reading = (async () => {
    try {
      for await (const update of watch) {
        updates++;
        lastAt = now();
        const key = deliveryStatusToJSON(update.status).replace(/^DELIVERY_STATUS_/, "");
        byStatus[key] = (byStatus[key] ?? 0) + 1;
      }
      if (!state.closing) state.failure = new Error("the server ended the stream");
    } catch (err) {
      if (!state.closing) state.failure = err instanceof Error ? err : new Error(String(err));
    }
  })();
  const close = () => {
    if (state.closing) return;
    state.closing = true;
    watch.close();
    client.close();
  };
  try {
    await watch.ready;
  } catch (err) {
    close();
    throw new Error(`WatchDeliveries did not start: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
  return {
    close,
    async finish(want: number, settleMs: number, deliveries: number, lastReceipt: number): Promise<WatchCount> {
      const until = now() + settleMs;
      while (updates < want && state.failure === undefined && now() < until) await sleep(10);
      if (state.failure === undefined) close();
      await reading;
      if (state.failure !== undefined) {
        throw new Error(`the WatchDeliveries stream failed after ${updates} updates: ${state.failure.message}`, {
          cause: state.failure,
        });
      }
      return {
        updates,
        perDelivery: updates / deliveries,
        byStatus,
        lagSeconds: Number.isNaN(lastAt) ? NaN : Math.max(0, lastAt - lastReceipt) / 1000,
      };
    },
  };
}

/** One webhook per event name, all pointing at the receiver (registered a few at a time). */
async function registerEach(client: HttpQueueClient, receiver: BenchReceiver, names: string[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < names.length) {
      const name = names[next++] ?? "";
      await client.registerWebhook({ namespace: NAMESPACE, event: name, url: `${receiver.url}/hooks/${name}` });
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

/** `count` events over the event `names` in turn, with sequence numbers from `firstSeq`. */
interface Seeded {
  names: string[];
  count: number;
  firstSeq: number;
}

/**
 * Stores the events with their deliveries and jobs through the statement
 * PushEvent uses, in statements of `perStatement` events (within its bound of
 * deliveries) in one transaction (one commit, which wakes the worker), and
 * returns when it committed.
 */
async function seedEvents(db: BenchDatabase, batches: Seeded[], pad: string, perStatement: number): Promise<number> {
  const client = createDatabase({ url: db.url, poolSize: 1, applicationName: BENCH_APPLICATION_NAME });
  const events = batches.flatMap(({ names, count, firstSeq }) =>
    Array.from({ length: count }, (_, i) => ({
      namespace: NAMESPACE,
      event: names[i % names.length] ?? "",
      payload: `{"seq":${firstSeq + i},"data":"${pad}"}`,
      ttlSeconds: 86_400,
      metadata: {},
      idempotencyKey: null,
      orderingKey: "",
      maxAttempts: 10,
    })),
  );
  try {
    await client.$client.begin(async (tx) => {
      for (let i = 0; i < events.length; i += perStatement) await storeEvents(tx, events.slice(i, i + perStatement));
    });
    return now();
  } finally {
    await client.$client.end({ timeout: 5 });
  }
}

export interface SteadyResult extends DeliveryResult {
  /** PushEvent calls answered per second within the window. */
  pushed: number;
}

/**
 * Events for `fanout` webhooks pushed continuously while the server delivers
 * them: closed-loop pushes, held back whenever more than `maxOutstanding`
 * deliveries are pushed but not received. Push rate and delivery rate settle
 * where ingest and delivery, sharing the machine, keep up with each other.
 * Deliveries received per second in the window.
 */
export function steady(
  ctx: ScenarioContext,
  options: { fanout: number; maxOutstanding: number },
): Promise<SteadyResult> {
  const { fanout, maxOutstanding } = options;
  const event = `steady${fanout}`;
  return withService(ctx, `steady${fanout}`, "warn", async (running) => {
    const [first] = running.clients;
    if (!first) throw new Error("no client");
    await registerWebhooks(first, ctx.receiver, event, fanout);
    await ctx.receiver.reset();
    const m = meter(running, ctx.receiver);
    const target: PushTarget = {
      clients: running.clients,
      namespace: NAMESPACE,
      event,
      payload: ctx.payload,
      firstSeq: 0,
    };
    const start = now();
    const from = start + ctx.warmupMs;
    const to = from + ctx.windowMs;
    // Received so far, polled from the receiver while the pushes run.
    let received = 0;
    let started = 0;
    const pushing = new AbortController();
    const poller = (async () => {
      while (!pushing.signal.aborted) {
        received = await ctx.receiver.count();
        await sleep(5);
      }
    })();
    const gate = async () => {
      while (started * fanout - received > maxOutstanding && now() < to) await sleep(2);
      started++;
    };
    const marks = markAt(m, from, to);
    const record = await closedLoop(target, ctx.inFlightPerChannel, to, gate).finally(() => {
      pushing.abort();
    });
    await poller;
    const [a, b] = await marks;
    if (record.errors > 0) throw new Error(`${record.errors} PushEvent calls failed: ${record.firstError}`);
    const { times } = await ctx.receiver.take();
    let delivered = 0;
    for (const t of times) if (t >= from && t < to) delivered++;
    return {
      rate: (delivered * 1000) / ctx.windowMs,
      deliveries: delivered,
      pushed: answeredRate(record, from, to),
      perDelivery: perUnit(m.cost(a, b), delivered),
    };
  });
}
