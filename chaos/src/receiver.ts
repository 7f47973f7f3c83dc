// The receiving end: a real HTTP server on loopback that records every
// request (its webhook-id, which event, when) and answers as told.
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/** How to answer a request: a status code, no answer at all (until `hangMs`), or a TCP reset. */
export type Answer = number | "hang" | "reset";

export interface Receipt {
  /** The webhook-id header: the delivery's id, the same on every attempt. */
  id: string;
  /** The request's path: which webhook it was sent for. */
  path: string;
  /** The event's sequence number and ordering key, from the payload the load generator wrote. */
  seq: number;
  key: string;
  /** When the request (headers and body) had arrived, ms since the epoch. */
  at: number;
  answer: Answer;
}

export interface Recorder {
  /** http://127.0.0.1:<port> */
  url: string;
  receipts: Receipt[];
  close(): Promise<void>;
}

/**
 * Starts the receiver; `answer` decides each request's fate from its index
 * (0-based, in arrival order) and what it carries. A request left hanging is
 * cut after `hangMs`, so that nothing waits forever.
 */
export async function startRecorder(answer: (index: number, receipt: Receipt) => Answer = () => 200, hangMs = 30_000) {
  const receipts: Receipt[] = [];
  const sockets = new Set<Socket>();
  const hanging = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      let body: { seq?: unknown; key?: unknown } = {};
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as typeof body;
      } catch {
        // Not one of ours: recorded with seq -1.
      }
      const receipt: Receipt = {
        id: String(req.headers["webhook-id"] ?? ""),
        path: req.url ?? "",
        seq: typeof body.seq === "number" ? body.seq : -1,
        key: typeof body.key === "string" ? body.key : "",
        at: Date.now(),
        answer: 200,
      };
      receipt.answer = answer(receipts.length, receipt);
      receipts.push(receipt);
      if (receipt.answer === "reset") {
        req.socket.resetAndDestroy();
      } else if (receipt.answer === "hang") {
        hanging.add(res);
        const timer = setTimeout(() => res.destroy(), hangMs);
        res.on("close", () => {
          clearTimeout(timer);
          hanging.delete(res);
        });
      } else {
        res.writeHead(receipt.answer, { "content-type": "text/plain" }).end("chaos");
      }
    });
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    receipts,
    async close() {
      for (const res of hanging) res.destroy();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
    },
  } satisfies Recorder;
}
