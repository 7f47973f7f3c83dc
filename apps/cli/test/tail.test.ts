import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { eventually, startReceiver, type Receiver } from "@httpqueue/testkit";
import { ANSI, CLI, coloured, okJson, runCli, startServer, type Server } from "./helpers.js";

const MISSING_ID = "0190a0d4-0000-7000-8000-000000000000";

/** `webhookctl tail` running as a process of its own, as someone at a terminal runs it. */
interface Tail {
  child: ChildProcess;
  /** Complete lines of stdout so far. */
  lines(): string[];
  stderr(): string;
  /** Sends SIGINT (Ctrl-C) and resolves with the exit code. */
  interrupt(): Promise<number | null>;
}

async function startTail(args: string[], env: Record<string, string>): Promise<Tail> {
  const child = spawn(CLI, ["tail", ...args], { env: { PATH: process.env.PATH, ...env }, stdio: "pipe" });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  let code: number | null | undefined;
  const exited = new Promise<number | null>((resolve) =>
    child.on("close", (c) => {
      code = c;
      resolve(c);
    }),
  );
  // Ready once the server's headers came: every change committed from then on is seen.
  await eventually(
    () => {
      if (code !== undefined) throw new Error(`tail exited ${String(code)}: ${stderr}`);
      return Promise.resolve(stderr.includes("Watching deliveries") ? true : undefined);
    },
    15_000,
    "tail to start",
  );
  return {
    child,
    lines: () => stdout.split("\n").slice(0, -1),
    stderr: () => stderr,
    async interrupt() {
      child.kill("SIGINT");
      return exited;
    },
  };
}

interface ChangeJson {
  changedAt: string;
  deliveryId: string;
  webhookId: string;
  eventId: string;
  namespace: string;
  event: string;
  status: string;
  attemptCount: number;
  attempt: { attempt: number; responseCode: number; durationMs: number; requestUrl: string } | null;
  nextAttemptAt: string | null;
  errorMessage: string;
}

describe("webhookctl tail", () => {
  let server: Server;
  let receiver: Receiver;
  let env: Record<string, string>;
  let webhookId: string;

  before(async () => {
    server = await startServer();
    // Each delivery's first request fails, its second succeeds.
    const seen = new Set<string>();
    receiver = await startReceiver((request) => {
      const id = String(request.headers["webhook-id"]);
      if (seen.has(id)) return 200;
      seen.add(id);
      return 503;
    });
    env = { WEBHOOKCTL_ADDR: server.address };
    ({ webhookId } = await okJson<{ webhookId: string }>(
      ["webhooks", "register", "--namespace", "tail", "--event", "ping", "--url", `${receiver.url}/ping`],
      { env },
    ));
  });
  after(async () => {
    await server.stop();
    await receiver.close();
  });

  const push = async (namespace = "tail") =>
    (
      await okJson<{ eventId: string }>(["events", "push", "--namespace", namespace, "--event", "ping", "{}"], {
        env,
      })
    ).eventId;

  it("prints a line per attempt as it happens, and exits 0 on Ctrl-C", async () => {
    const tail = await startTail(["--namespace", "tail"], { ...env, FORCE_COLOR: "1" });
    const eventId = await push();
    await push("elsewhere");
    const plain = () => tail.lines().map((line) => line.replace(new RegExp(ANSI.source, "g"), ""));
    const lines = await eventually(
      () => Promise.resolve(plain().some((line) => line.includes(" SUCCEEDED ")) ? plain() : undefined),
      15_000,
      "a SUCCEEDED line",
    );
    const fields = String.raw`webhook ${webhookId}  delivery (\S+)  attempt`;
    const failed = new RegExp(String.raw`^\d{4}-\d\d-\d\dT\S+Z  RETRYING {3}503 +\d+m?s  tail/ping  ${fields} 1`);
    const succeeded = new RegExp(String.raw`^\d{4}-\d\d-\d\dT\S+Z  SUCCEEDED  200 +\d+m?s  tail/ping  ${fields} 2$`);
    const first = lines.find((line) => failed.test(line));
    const last = lines.find((line) => succeeded.test(line));
    assert.ok(first, `a line for the failed attempt:\n${lines.join("\n")}`);
    assert.ok(last, `a line for the successful attempt:\n${lines.join("\n")}`);
    assert.equal(failed.exec(first)?.[1], succeeded.exec(last)?.[1], "the same delivery");
    assert.ok(lines.indexOf(first) < lines.indexOf(last));
    assert.ok(
      lines.every((line) => line.includes("  tail/ping  ")),
      "only the namespace asked for",
    );
    assert.ok(
      tail.lines().some((line) => line.includes(coloured(32, "SUCCEEDED"))),
      "the status in colour",
    );
    assert.ok(eventId);

    assert.equal(await tail.interrupt(), 0);
    assert.doesNotMatch(tail.stderr(), /error/);
  });

  it("prints every field of every change as one JSON object per line with --json", async () => {
    const tail = await startTail(["--json", "--webhook", webhookId], env);
    const eventId = await push();
    const changes = await eventually(
      () => {
        const parsed = tail.lines().map((line) => JSON.parse(line) as ChangeJson);
        const done = parsed.some((c) => c.eventId === eventId && c.status === "DELIVERY_STATUS_SUCCEEDED");
        return Promise.resolve(done ? parsed : undefined);
      },
      15_000,
      "a SUCCEEDED change",
    );
    const attempts = changes.filter((c) => c.eventId === eventId && c.attempt !== null);
    assert.deepEqual(
      attempts.map((c) => [c.status, c.attempt?.attempt, c.attempt?.responseCode]),
      [
        ["DELIVERY_STATUS_RETRYING", 1, 503],
        ["DELIVERY_STATUS_SUCCEEDED", 2, 200],
      ],
    );
    const [change] = attempts;
    assert.ok(change);
    assert.deepEqual(Object.keys(change).sort(), [
      "attempt",
      "attemptCount",
      "changedAt",
      "deliveryId",
      "errorMessage",
      "event",
      "eventId",
      "namespace",
      "nextAttemptAt",
      "status",
      "webhookId",
    ]);
    assert.equal(change.webhookId, webhookId);
    assert.equal(change.namespace, "tail");
    assert.equal(change.attempt?.requestUrl, `${receiver.url}/ping`);
    assert.ok(!Number.isNaN(Date.parse(change.changedAt)));
    assert.equal(await tail.interrupt(), 0);
    assert.equal(tail.stderr(), "Watching deliveries (Ctrl-C to stop).\n");
  });

  it("follows one event with --event-id; an unknown one is the server's error, exit 1", async () => {
    const eventId = await push();
    await eventually(async () => {
      const { deliveries } = await okJson<{ deliveries: { id: string; status: string }[] }>(
        ["status", "--event", eventId],
        { env },
      );
      return deliveries[0]?.status === "DELIVERY_STATUS_SUCCEEDED" ? deliveries[0] : undefined;
    });
    const tail = await startTail(["--json", "--event-id", eventId], env);
    const other = await push();
    const { delivery } = await okJson<{ delivery: { id: string } }>(
      ["deliveries", "resend", (await deliveryIds(eventId))[0]!],
      { env },
    );
    const changes = await eventually(
      () => {
        const parsed = tail.lines().map((line) => JSON.parse(line) as ChangeJson);
        const done = parsed.some((c) => c.status === "DELIVERY_STATUS_SUCCEEDED");
        return Promise.resolve(done ? parsed : undefined);
      },
      15_000,
      "the resent delivery's success",
    );
    assert.ok(
      changes.every((c) => c.eventId === eventId && c.deliveryId === delivery.id),
      JSON.stringify(changes),
    );
    assert.ok(other);
    assert.equal(await tail.interrupt(), 0);

    const missing = await runCli(["tail", "--event-id", MISSING_ID], { env });
    assert.deepEqual(missing, {
      code: 1,
      stdout: "",
      stderr: `error: NOT_FOUND: event_id: event ${MISSING_ID} not found\n`,
    });
  });

  const deliveryIds = async (eventId: string) =>
    (await okJson<{ deliveries: { id: string }[] }>(["status", "--event", eventId], { env })).deliveries.map(
      (d) => d.id,
    );
});
