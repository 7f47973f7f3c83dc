import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createClient, DeliveryStatus, type HttpQueueClient } from "@httpqueue/sdk";
import { freePort, startReceiver, type Receiver, type ServerProcess } from "@httpqueue/testkit";
import { runServerToExit, spawnServer, waitForDelivery } from "./helpers/server.js";

describe("embedded PostgreSQL (no DATABASE_URL)", () => {
  let dir: string;
  let env: Record<string, string>;
  let receiver: Receiver;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "httpqueue-embedded-"));
    chmodSync(dir, 0o755); // as root, PostgreSQL runs as "postgres" and must get through
    env = { EMBEDDED_PG_DIR: join(dir, "pg"), EMBEDDED_PG_PORT: String(await freePort()) };
    receiver = await startReceiver();
  });
  after(async () => {
    await receiver.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const start = async (): Promise<{ proc: ServerProcess; client: HttpQueueClient }> => {
    const proc = await spawnServer(env);
    return { proc, client: createClient({ address: proc.address }) };
  };
  const postgresRunning = () => existsSync(join(env.EMBEDDED_PG_DIR!, "data", "postmaster.pid"));

  it("starts, delivers, stops cleanly, and keeps its data for the next start", async () => {
    let { proc, client } = await start();
    assert.match(proc.output(), /creating the embedded PostgreSQL cluster/);
    assert.match(proc.output(), new RegExp(`embedded PostgreSQL on 127\\.0\\.0\\.1:${env.EMBEDDED_PG_PORT}`));
    await client.registerWebhook({ namespace: "embedded", event: "e", url: receiver.url });
    const { eventId } = await client.pushEvent({ namespace: "embedded", event: "e", payload: '{"first":true}' });
    await waitForDelivery(client, eventId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
    assert.equal(receiver.requests.at(-1)?.body, '{"first":true}');

    client.close();
    proc.child.kill("SIGTERM");
    assert.equal(await proc.exited, 0);
    assert.equal(postgresRunning(), false, "PostgreSQL stopped with the server");

    ({ proc, client } = await start());
    try {
      assert.doesNotMatch(proc.output(), /creating the embedded PostgreSQL cluster/, "the cluster is reused");
      const status = await client.getWebhookStatus({ identifier: { $case: "eventId", value: eventId } });
      assert.equal(status.event?.payload, '{"first":true}', "the data is still there");
      assert.equal(status.deliveries[0]?.status, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
    } finally {
      client.close();
      proc.child.kill("SIGINT");
      assert.equal(await proc.exited, 0);
    }
  });

  it("a second server on the same folder is refused, and the first keeps its database", async () => {
    const { proc, client } = await start();
    try {
      const { code, output } = await runServerToExit({ ...env, GRPC_PORT: "0" });
      assert.equal(code, 2);
      assert.match(
        output,
        new RegExp(`another httpqueue \\(pid ${proc.child.pid}\\) is using the embedded PostgreSQL`),
      );
      const { eventId } = await client.pushEvent({ namespace: "embedded", event: "e", payload: '{"still":"here"}' });
      await waitForDelivery(client, eventId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
    } finally {
      client.close();
      proc.child.kill("SIGTERM");
      assert.equal(await proc.exited, 0);
    }
  });

  it("after a SIGKILL, the next start stops the PostgreSQL left running and carries on", async () => {
    let { proc, client } = await start();
    client.close();
    proc.child.kill("SIGKILL");
    await proc.exited;
    assert.equal(postgresRunning(), true, "PostgreSQL outlives a killed server");

    ({ proc, client } = await start());
    try {
      assert.match(proc.output(), /the embedded PostgreSQL of an earlier run is still running; stopping it/);
      const { eventId } = await client.pushEvent({ namespace: "embedded", event: "e", payload: "{}" });
      await waitForDelivery(client, eventId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
    } finally {
      client.close();
      proc.child.kill("SIGTERM");
      assert.equal(await proc.exited, 0);
    }
    assert.equal(postgresRunning(), false);
  });

  it("a port taken by another program is reported, naming EMBEDDED_PG_PORT", async () => {
    const squatter: Server = createServer();
    await new Promise<void>((resolve) => squatter.listen(Number(env.EMBEDDED_PG_PORT), "127.0.0.1", resolve));
    try {
      const { code, output } = await runServerToExit({ ...env, GRPC_PORT: "0" });
      assert.equal(code, 2);
      assert.match(output, /port \d+ \(EMBEDDED_PG_PORT\) is in use by another program/);
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  });

  it("DATABASE_URL set: no embedded PostgreSQL is started", async () => {
    const untouched = join(dir, "never");
    const { code, output } = await runServerToExit({
      DATABASE_URL: "postgres://nobody@127.0.0.1:1/none",
      EMBEDDED_PG_DIR: untouched,
      GRPC_PORT: "0",
    });
    assert.equal(code, 1);
    assert.doesNotMatch(output, /embedded/);
    assert.equal(existsSync(untouched), false);
  });

  it(
    "as root, a data folder the postgres user cannot reach is reported clearly",
    { skip: process.getuid?.() !== 0 && "only root runs PostgreSQL as another user" },
    async () => {
      const closed = mkdtempSync(join(tmpdir(), "httpqueue-closed-")); // mode 0700
      try {
        const { code, output } = await runServerToExit({ ...env, EMBEDDED_PG_DIR: join(closed, "pg"), GRPC_PORT: "0" });
        assert.equal(code, 2);
        assert.match(output, /cannot enter .*httpqueue-closed-.*chmod o\+x/);
      } finally {
        rmSync(closed, { recursive: true, force: true });
      }
    },
  );
});
