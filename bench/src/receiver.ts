import { fork, type ChildProcess } from "node:child_process";
import { extname } from "node:path";
import { fileURLToPath } from "node:url";

export type ReceiverRequest =
  { id: number; op: "count" } | { id: number; op: "take"; from: number } | { id: number; op: "reset" };

export interface ReceiverReply {
  id: number;
  count: number;
  port?: number;
  times?: Float64Array;
  seqs?: Int32Array;
}

type WithoutId<T> = T extends unknown ? Omit<T, "id"> : never;

/** Requests recorded by the receiver, in arrival order. */
export interface Arrivals {
  /** Arrival times, ms since the epoch (see clock.ts). */
  times: Float64Array;
  /** The `seq` each request's body started with, or -1. */
  seqs: Int32Array;
}

export interface BenchReceiver {
  /** http://127.0.0.1:<port> */
  url: string;
  pid: number;
  /** Requests received since the last reset. */
  count(): Promise<number>;
  /** The requests received since the last reset, from the `from`-th on. */
  take(from?: number): Promise<Arrivals>;
  reset(): Promise<void>;
  close(): Promise<void>;
}

/** Starts the receiver process (receiver-process.ts) and waits until it listens. */
export async function startBenchReceiver(): Promise<BenchReceiver> {
  // .js when built, .ts when run through tsx (whose loader the child inherits).
  const entry = fileURLToPath(new URL(`./receiver-process${extname(fileURLToPath(import.meta.url))}`, import.meta.url));
  const child: ChildProcess = fork(entry, [], {
    serialization: "advanced",
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const pending = new Map<number, (reply: ReceiverReply) => void>();
  let nextId = 1;
  let exited = false;

  const port = await new Promise<number>((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => {
      reject(new Error(`the receiver exited (${code}) before listening`));
    });
    child.once("message", (reply: ReceiverReply) => {
      if (reply.port === undefined) reject(new Error("the receiver sent no port"));
      else resolve(reply.port);
    });
  });
  child.on("message", (reply: ReceiverReply) => {
    pending.get(reply.id)?.(reply);
    pending.delete(reply.id);
  });
  child.on("exit", () => {
    exited = true;
  });

  const call = (request: WithoutId<ReceiverRequest>) =>
    new Promise<ReceiverReply>((resolve, reject) => {
      if (exited) {
        reject(new Error("the receiver is gone"));
        return;
      }
      const id = nextId++;
      pending.set(id, resolve);
      child.send({ ...request, id });
    });

  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid ?? 0,
    count: async () => (await call({ op: "count" })).count,
    async take(from = 0) {
      const reply = await call({ op: "take", from });
      return { times: reply.times ?? new Float64Array(), seqs: reply.seqs ?? new Int32Array() };
    },
    async reset() {
      await call({ op: "reset" });
    },
    async close() {
      if (exited) return;
      const gone = new Promise((resolve) => child.once("exit", resolve));
      child.disconnect();
      await gone;
    },
  };
}
