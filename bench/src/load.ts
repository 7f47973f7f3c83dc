// Load for the API, through the SDK as users call it: PushEvent from several
// client channels, either as fast as the server answers (closed loop) or at a
// fixed offered rate (open loop).
import { createClient, type HttpQueueClient } from "@httpqueue/sdk";
import { now, sleep } from "./clock.js";
import { Samples } from "./stats.js";

/**
 * `channels` clients, each with a channel (and connection) of its own: grpc-js
 * shares one connection between clients of the same address and options
 * unless each keeps a local subchannel pool.
 */
export function createClients(address: string, channels: number): HttpQueueClient[] {
  return Array.from({ length: channels }, () =>
    createClient({ address, deadlineMs: 30_000, channelOptions: { "grpc.use_local_subchannel_pool": 1 } }),
  );
}

/** A JSON payload of about `bytes` bytes whose first field is `seq` (the receiver reads it). */
export function payloadMaker(bytes: number): (seq: number) => string {
  const pad = "x".repeat(Math.max(0, bytes - '{"seq":0000000,"data":""}'.length));
  return (seq) => `{"seq":${seq},"data":"${pad}"}`;
}

/** What a load run recorded, for its completed calls (failed calls are only counted). */
export interface PushRecord {
  /** When each successful call started (open loop: when it was due), ms since the epoch. */
  startedAt: Samples;
  /** When each successful call was answered. */
  answeredAt: Samples;
  /** The seq of each successful call. */
  seqs: Samples;
  errors: number;
  firstError: string | undefined;
  /** Open loop only: calls not made because too many were still waiting for an answer. */
  skipped: number;
}

function newRecord(): PushRecord {
  return {
    startedAt: new Samples(),
    answeredAt: new Samples(),
    seqs: new Samples(),
    errors: 0,
    firstError: undefined,
    skipped: 0,
  };
}

export interface PushTarget {
  clients: HttpQueueClient[];
  namespace: string;
  event: string;
  payload: (seq: number) => string;
  /** The first seq; each call takes the next one. */
  firstSeq: number;
}

function push(target: PushTarget, client: HttpQueueClient, seq: number, startedAt: number, record: PushRecord) {
  return client.pushEvent({ namespace: target.namespace, event: target.event, payload: target.payload(seq) }).then(
    () => {
      record.startedAt.push(startedAt);
      record.answeredAt.push(now());
      record.seqs.push(seq);
    },
    (err: unknown) => {
      record.errors++;
      record.firstError ??= err instanceof Error ? err.message : String(err);
    },
  );
}

/**
 * `inFlight` calls at a time on each client, a new one as soon as one is
 * answered, until `until`. `gate`, when given, is awaited before each call.
 */
export async function closedLoop(
  target: PushTarget,
  inFlight: number,
  until: number,
  gate?: () => Promise<void>,
): Promise<PushRecord> {
  const record = newRecord();
  let seq = target.firstSeq;
  const loop = async (client: HttpQueueClient) => {
    while (now() < until) {
      if (gate) await gate();
      if (now() >= until) break;
      const s = seq++;
      await push(target, client, s, now(), record);
    }
  };
  await Promise.all(target.clients.flatMap((client) => Array.from({ length: inFlight }, () => loop(client))));
  return record;
}

/**
 * Calls at `rate` per second from `start` to `until`, round robin over the
 * clients, whether or not earlier calls were answered. Latency counts from
 * when a call was due, so a stalled server cannot hide its stall (no
 * coordinated omission). Beyond `maxOutstanding` unanswered calls, due calls
 * are skipped and counted.
 */
export async function openLoop(
  target: PushTarget,
  rate: number,
  start: number,
  until: number,
  maxOutstanding = 10_000,
): Promise<PushRecord> {
  const record = newRecord();
  const interval = 1000 / rate;
  const total = Math.floor(((until - start) * rate) / 1000);
  const calls: Promise<void>[] = [];
  let outstanding = 0;
  let i = 0;
  await sleep(Math.max(0, start - now()));
  while (i < total) {
    const t = now();
    while (i < total && start + i * interval <= t) {
      if (outstanding >= maxOutstanding) {
        record.skipped++;
      } else {
        const client = target.clients[i % target.clients.length];
        if (!client) throw new Error("no client");
        outstanding++;
        calls.push(
          push(target, client, target.firstSeq + i, start + i * interval, record).finally(() => {
            outstanding--;
          }),
        );
      }
      i++;
    }
    if (i < total) await sleep(Math.max(0, start + i * interval - now()));
  }
  await Promise.all(calls);
  return record;
}

/** Calls answered within [from, to), per second. */
export function answeredRate(record: PushRecord, from: number, to: number): number {
  const answered = record.answeredAt.values();
  let n = 0;
  for (const t of answered) if (t >= from && t < to) n++;
  return (n * 1000) / (to - from);
}

/** Latencies (ms) of the successful calls that started within [from, to). */
export function latenciesWithin(record: PushRecord, from: number, to: number): Float64Array {
  const started = record.startedAt.values();
  const answered = record.answeredAt.values();
  const out = new Samples(started.length);
  for (let i = 0; i < started.length; i++) {
    const s = started[i] ?? NaN;
    if (s >= from && s < to) out.push((answered[i] ?? NaN) - s);
  }
  return out.values();
}
