// The webhook receiver, in a process of its own so that it never shares an
// event loop with the load it measures. A plain node:http server that answers
// 200 with an empty body (after 8 s for paths under /slow/) and records when
// each request arrived and the sequence number its body starts with. Driven
// over IPC by receiver.ts.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { ReceiverReply, ReceiverRequest } from "./receiver.js";

const origin = performance.timeOrigin;
/** How long requests to /slow/… wait for their answer. */
const SLOW_RESPONSE_MS = 8_000;
let times = new Float64Array(1 << 17);
let seqs = new Int32Array(1 << 17);
let count = 0;

function record(at: number, seq: number): void {
  if (count === times.length) {
    const t = new Float64Array(times.length * 2);
    t.set(times);
    times = t;
    const s = new Int32Array(seqs.length * 2);
    s.set(seqs);
    seqs = s;
  }
  times[count] = at;
  seqs[count] = seq;
  count++;
}

const PREFIX = Buffer.from('{"seq":', "latin1");
const ZERO = 48;

/** The number after `{"seq":` at the start of the body, or -1. */
function parseSeq(chunk: Buffer): number {
  if (chunk.length <= PREFIX.length || chunk.compare(PREFIX, 0, PREFIX.length, 0, PREFIX.length) !== 0) return -1;
  let seq = 0;
  for (let i = PREFIX.length; i < chunk.length; i++) {
    const digit = (chunk[i] ?? 0) - ZERO;
    if (digit < 0 || digit > 9) return i === PREFIX.length ? -1 : seq;
    seq = seq * 10 + digit;
  }
  return seq;
}

const server = createServer((req, res) => {
  const arrivedAt = origin + performance.now();
  let seq = -1;
  let first = true;
  req.on("data", (chunk: Buffer) => {
    if (first) seq = parseSeq(chunk);
    first = false;
  });
  req.on("end", () => {
    record(arrivedAt, seq);
    res.statusCode = 200;
    // A receiver that hangs: it answers only after SLOW_RESPONSE_MS.
    if (req.url?.startsWith("/slow/")) setTimeout(() => res.end(), SLOW_RESPONSE_MS);
    else res.end();
  });
});
// Longer than any pause in a run: the clients keep their connections.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 130_000;

process.on("message", (message: ReceiverRequest) => {
  let reply: ReceiverReply;
  switch (message.op) {
    case "count":
      reply = { id: message.id, count };
      break;
    case "take": {
      const from = Math.min(message.from, count);
      reply = { id: message.id, count, times: times.slice(from, count), seqs: seqs.slice(from, count) };
      break;
    }
    case "reset":
      count = 0;
      reply = { id: message.id, count };
      break;
  }
  process.send?.(reply);
});
process.on("disconnect", () => {
  server.closeAllConnections();
  server.close();
  process.exit(0);
});

server.listen(0, "127.0.0.1", () => {
  process.send?.({ id: 0, count: 0, port: (server.address() as AddressInfo).port } satisfies ReceiverReply);
});
