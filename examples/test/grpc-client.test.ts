import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { createTestDatabase, spawnServer, type ServerProcess, type TestDatabase } from "@httpqueue/testkit";

const run = promisify(execFile);
const EXAMPLES = fileURLToPath(new URL("..", import.meta.url));
const SERVER_MAIN = fileURLToPath(import.meta.resolve("@httpqueue/server"));

describe("examples/grpc_client.ts", () => {
  let db: TestDatabase;
  let server: ServerProcess;

  before(async () => {
    db = await createTestDatabase();
    server = await spawnServer(SERVER_MAIN, {
      DATABASE_URL: db.url,
      // The example's receiver runs on loopback, which deliveries may not reach by default.
      ALLOW_PRIVATE_DESTINATIONS: "true",
      GRPC_PORT: "0",
      LOG_LEVEL: "info",
      WORKER_POLL_INTERVAL: "50ms",
      SHUTDOWN_TIMEOUT: "5s",
    });
  });
  after(async () => {
    server.child.kill("SIGTERM");
    await server.exited;
    await db.drop();
  });

  it("registers a webhook, pushes an event and sees it delivered and verified", async () => {
    const { stdout } = await run(process.execPath, ["--import", "tsx", "grpc_client.ts"], {
      cwd: EXAMPLES,
      env: { PATH: process.env.PATH, HTTPQUEUE_ADDR: server.address },
      timeout: 60_000,
    });
    const lines = stdout.trimEnd().split("\n");
    assert.equal(lines.length, 5, stdout);
    const webhookId =
      /^registered webhook (\S+) \(example\/user\.signup -> http:\/\/127\.0\.0\.1:\d+\/webhooks\)$/.exec(
        lines[0]!,
      )?.[1];
    assert.ok(webhookId, lines[0]);
    assert.match(lines[1]!, /^pushed event \S+$/);
    assert.equal(
      lines[2]!.replace(/delivery \S+/, "delivery ID"),
      'receiver: delivery ID verified, payload {"userId":42,"email":"ada@example.com","plan":"pro"}',
    );
    assert.equal(lines[3], "status: DELIVERY_STATUS_SUCCEEDED after 1 attempt(s), HTTP 204");
    assert.equal(lines[4], `unregistered webhook ${webhookId}`);
  });

  it("fails with the server's error when no server answers", async () => {
    await assert.rejects(
      run(process.execPath, ["--import", "tsx", "grpc_client.ts"], {
        cwd: EXAMPLES,
        env: { PATH: process.env.PATH, HTTPQUEUE_ADDR: "127.0.0.1:1" },
      }),
      (err: { code?: number; stderr?: string }) => {
        assert.equal(err.code, 1);
        assert.match(err.stderr ?? "", /^httpqueue at 127\.0\.0\.1:1: UNAVAILABLE: /);
        return true;
      },
    );
  });
});
