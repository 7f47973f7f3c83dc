import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { eventually, startReceiver, type Receiver } from "@httpqueue/testkit";
import { ok, okJson, runCli, startServer, TIME, type Server } from "./helpers.js";

interface DeliveryJson {
  id: string;
  webhookId: string;
  eventId: string;
  status: string;
  attemptCount: number;
}

interface AttemptJson {
  deliveryId: string;
  attempt: number;
  startedAt: string;
  durationMs: number;
  requestMethod: string;
  requestUrl: string;
  requestHeaders: Record<string, string>;
  responseCode: number;
  responseHeaders: Record<string, string>;
  responseBody: string;
  errorMessage: string;
}

interface EventJson {
  id: string;
  namespace: string;
  event: string;
  payload: string;
  createdAt: string;
  payloadRemovedAt: string | null;
}

const MISSING_ID = "0190a0d4-0000-7000-8000-000000000000";

/**
 * What happened to deliveries and doing it again: attempts list, events get
 * and list, deliveries resend, webhooks recover and replay, on a real server
 * delivering to a real receiver.
 */
describe("webhookctl attempts, events get/list, deliveries resend, webhooks recover/replay", () => {
  let server: Server;
  let receiver: Receiver;
  let env: Record<string, string>;
  /** Whether the receiver fails every request (500) or takes it (200). */
  let failing = true;
  let webhookId: string;
  const eventIds: string[] = [];

  const deliveryOf = (eventId: string, status: string) =>
    eventually(async () => {
      const { deliveries } = await okJson<{ deliveries: DeliveryJson[] }>(["status", "--event", eventId], { env });
      const delivery = deliveries.find((d) => d.webhookId === webhookId);
      return delivery?.status === status ? delivery : undefined;
    });

  before(async () => {
    server = await startServer();
    receiver = await startReceiver(() => (failing ? { status: 500, body: "down for maintenance" } : 200));
    env = { WEBHOOKCTL_ADDR: server.address };
    ({ webhookId } = await okJson<{ webhookId: string }>(
      [
        ...["webhooks", "register", "--namespace", "hist", "--event", "order", "--url", `${receiver.url}/orders`],
        ...["--max-attempts", "1"],
      ],
      { env },
    ));
    for (const id of [1, 2]) {
      const { eventId } = await okJson<{ eventId: string }>(
        ["events", "push", "--namespace", "hist", "--event", "order", JSON.stringify({ id, lines: [id] })],
        { env },
      );
      eventIds.push(eventId);
    }
    for (const eventId of eventIds) await deliveryOf(eventId, "DELIVERY_STATUS_FAILED");
  });
  after(async () => {
    await server.stop();
    await receiver.close();
  });

  it("events get shows the event, its payload and its deliveries per status", async () => {
    const [eventId] = eventIds as [string];
    const human = await ok(["events", "get", eventId], { env });
    assert.match(human, new RegExp(`^Event {12}${eventId}$`, "m"));
    assert.match(human, /^Namespace {8}hist$/m);
    assert.match(human, /^Payload {10}\{\n {19}"id": 1,\n {19}"lines": \[\n/m);
    assert.match(human, new RegExp(`^Created {10}${TIME.source}$`, "m"));
    assert.match(human, /^Deliveries {7}1 FAILED$/m);
    const json = await okJson<{ event: EventJson; counts: { status: string; count: number }[] }>(
      ["events", "get", eventId],
      { env },
    );
    assert.equal(json.event.id, eventId);
    assert.equal(json.event.payload, '{"id":1,"lines":[1]}');
    assert.deepEqual(json.counts, [{ status: "DELIVERY_STATUS_FAILED", count: 1 }]);
  });

  it("events get and status --event say when retention removed the payload; --json has payloadRemovedAt", async () => {
    const { eventId } = await okJson<{ eventId: string }>(
      ["events", "push", "--namespace", "hist-retention", "--event", "order", '{"id":3}'],
      { env },
    );
    const kept = await okJson<{ event: EventJson }>(["events", "get", eventId], { env });
    assert.equal(kept.event.payloadRemovedAt, null);
    assert.doesNotMatch(await ok(["events", "get", eventId], { env }), /removed by retention/);

    // What the retention sweep does once PAYLOAD_RETENTION has passed.
    const [row] = await server.db.sql<{ removed: Date }[]>`
      update event_records set payload = '', payload_removed_at = now() where id = ${eventId}
      returning payload_removed_at as removed`;
    assert.ok(row);

    const human = await ok(["events", "get", eventId], { env });
    assert.match(human, new RegExp(`^Payload {10}removed by retention ${TIME.source}$`, "m"));
    assert.match(human, /^Metadata {9}-$/m, "the fields after it are as before");
    const status = await ok(["status", "--event", eventId], { env });
    assert.match(status, new RegExp(`^Payload {10}removed by retention ${TIME.source}$`, "m"));
    const json = await okJson<{ event: EventJson }>(["events", "get", eventId], { env });
    assert.equal(json.event.payload, "");
    assert.equal(json.event.payloadRemovedAt, row.removed.toISOString());
    const listed = await okJson<{ events: EventJson[] }>(["events", "list", "--namespace", "hist-retention"], { env });
    assert.deepEqual(
      listed.events.map((e) => [e.id, e.payloadRemovedAt]),
      [[eventId, row.removed.toISOString()]],
    );
  });

  it("events list shows events newest first, filtered by namespace, event and time", async () => {
    const human = await ok(["events", "list", "--namespace", "hist", "--since", "1h"], { env });
    const lines = human.trimEnd().split("\n");
    assert.match(lines[0]!, /^ID\s+NAMESPACE\s+EVENT\s+CREATED\s+IDEMPOTENCY KEY\s+METADATA$/);
    assert.deepEqual(
      lines.slice(1).map((line) => line.split(/\s+/)[0]),
      [...eventIds].reverse(),
    );
    const json = await okJson<{ events: EventJson[]; nextPageToken: string }>(
      [
        "events",
        "list",
        "--namespace",
        "hist",
        "--event",
        "order",
        "--since",
        new Date(Date.now() - 3_600_000).toISOString(),
      ],
      { env },
    );
    assert.deepEqual(
      json.events.map((e) => [e.id, e.namespace, e.event, e.payload]),
      [...eventIds].reverse().map((id) => [id, "hist", "order", ""]),
    );
    const paged = await runCli(["events", "list", "--namespace", "hist", "--limit", "1"], { env });
    assert.equal(paged.code, 0, paged.stderr);
    const token = /add --page-token (\S+), or --all/.exec(paged.stderr)?.[1];
    assert.ok(token, paged.stderr);
    const all = await okJson<{ events: EventJson[] }>(
      ["events", "list", "--namespace", "hist", "--limit", "1", "--all"],
      {
        env,
      },
    );
    assert.equal(all.events.length, 2);
    assert.equal(await ok(["events", "list", "--namespace", "hist", "--until", "1h"], { env }), "No events.\n");
    assert.deepEqual(await okJson(["events", "list", "--namespace", "elsewhere"], { env }), {
      events: [],
      nextPageToken: "",
    });
  });

  it("attempts list shows each request and what came back, newest first", async () => {
    const delivery = await deliveryOf(eventIds[0]!, "DELIVERY_STATUS_FAILED");
    const human = await ok(["attempts", "list", delivery.id], { env });
    const lines = human.trimEnd().split("\n");
    assert.match(lines[0]!, /^ATTEMPT\s+STARTED\s+DURATION\s+REQUEST\s+HTTP\s+RESPONSE \/ ERROR$/);
    assert.equal(lines.length, 2);
    assert.match(lines[1]!, new RegExp(`^1\\s+${TIME.source}\\s+\\d+m?s\\s+POST ${receiver.url}/orders\\s+500\\s+`));
    const json = await okJson<{ attempts: AttemptJson[]; nextPageToken: string }>(["attempts", "list", delivery.id], {
      env,
    });
    const [attempt] = json.attempts;
    assert.ok(attempt);
    assert.deepEqual(
      [attempt.deliveryId, attempt.attempt, attempt.requestMethod, attempt.requestUrl, attempt.responseCode],
      [delivery.id, 1, "POST", `${receiver.url}/orders`, 500],
    );
    assert.equal(attempt.requestHeaders["webhook-id"], delivery.id);
    assert.match(attempt.responseBody, /down for maintenance/);
    assert.ok(!Number.isNaN(Date.parse(attempt.startedAt)));
    assert.equal(json.nextPageToken, "");
  });

  it("deliveries resend attempts a delivery again, and webhooks recover resends every failed one", async () => {
    failing = false;
    const first = await deliveryOf(eventIds[0]!, "DELIVERY_STATUS_FAILED");
    const resent = await okJson<{ delivery: DeliveryJson }>(["deliveries", "resend", first.id], { env });
    assert.equal(resent.delivery.id, first.id);
    assert.match(resent.delivery.status, /^DELIVERY_STATUS_(PENDING|RETRYING|SUCCEEDED)$/);
    await deliveryOf(eventIds[0]!, "DELIVERY_STATUS_SUCCEEDED");
    const attempts = await okJson<{ attempts: AttemptJson[] }>(["attempts", "list", first.id], { env });
    assert.deepEqual(
      attempts.attempts.map((a) => [a.attempt, a.responseCode]),
      [
        [2, 200],
        [1, 500],
      ],
    );

    const human = await ok(["webhooks", "recover", webhookId, "--since", "1h"], { env });
    assert.match(
      human,
      new RegExp(`^Resent 1 failed or expired delivery of webhook ${webhookId} created since \\S+Z\\.\\n$`),
    );
    await deliveryOf(eventIds[1]!, "DELIVERY_STATUS_SUCCEEDED");
    const again = await okJson<{ webhookId: string; since: string; resent: number }>(
      ["webhooks", "recover", webhookId, "--since", "2h"],
      { env },
    );
    assert.equal(again.resent, 0, "nothing failed again meanwhile");
    assert.equal(again.webhookId, webhookId);
    assert.ok(Math.abs(Date.parse(again.since) - (Date.now() - 7_200_000)) < 60_000, again.since);
  });

  it("webhooks replay delivers the events a webhook missed, once", async () => {
    const late = await startReceiver();
    try {
      const { webhookId: lateId } = await okJson<{ webhookId: string }>(
        ["webhooks", "register", "--namespace", "hist", "--event", "order", "--url", `${late.url}/late`],
        { env },
      );
      const human = await ok(["webhooks", "replay", lateId, "--since", "1h"], { env });
      assert.match(
        human,
        new RegExp(`^Queued 2 missed deliveries to webhook ${lateId}, for events since \\S+Z\\.\\n$`),
      );
      const received = await late.waitForRequests(2);
      assert.deepEqual(received.map((r) => JSON.parse(r.body) as unknown).sort(), [
        { id: 1, lines: [1] },
        { id: 2, lines: [2] },
      ]);
      const again = await okJson<{ webhookId: string; queued: number }>(
        ["webhooks", "replay", lateId, "--since", new Date(Date.now() - 3_600_000).toISOString()],
        { env },
      );
      assert.deepEqual([again.webhookId, again.queued], [lateId, 0]);
    } finally {
      await late.close();
    }
  });

  it("reports unknown and malformed ids as the server's error, exit 1", async () => {
    const cases: [string[], RegExp][] = [
      [["attempts", "list", MISSING_ID], new RegExp(`^error: NOT_FOUND: delivery ${MISSING_ID} not found\\n$`)],
      [["events", "get", MISSING_ID], new RegExp(`^error: NOT_FOUND: event ${MISSING_ID} not found\\n$`)],
      [["deliveries", "resend", MISSING_ID], /^error: NOT_FOUND: /],
      [["webhooks", "recover", MISSING_ID, "--since", "1h"], /^error: NOT_FOUND: /],
      [["webhooks", "replay", MISSING_ID, "--since", "1h"], /^error: NOT_FOUND: /],
      [["events", "get", "not-an-id"], /^error: INVALID_ARGUMENT: event_id: /],
      [["attempts", "list", "not-an-id"], /^error: INVALID_ARGUMENT: delivery_id: /],
    ];
    for (const [args, message] of cases) {
      for (const json of [[], ["--json"]]) {
        const result = await runCli([...args, ...json], { env });
        assert.equal(result.code, 1, `${args.join(" ")}: ${result.stderr}`);
        assert.equal(result.stdout, "");
        assert.match(result.stderr, message);
      }
    }
  });

  it("exits 2 on a --since or --until it cannot read, or none where one is required", async () => {
    const cases: [string[], RegExp][] = [
      [
        ["events", "list", "--since", "yesterday"],
        /option '--since <when>' argument 'yesterday' is invalid\. Use a duration back from now, such as 30m, 24h or 7d, or an ISO 8601 time/,
      ],
      [["events", "list", "--until", "12"], /option '--until <when>' argument '12' is invalid/],
      [["webhooks", "recover", MISSING_ID, "--since", "-1h"], /argument '-1h' is invalid/],
      [["webhooks", "replay", MISSING_ID, "--since", "2026-13-45"], /argument '2026-13-45' is invalid/],
      [["webhooks", "recover", MISSING_ID], /required option '--since <when>' not specified/],
      [["attempts", "list"], /missing required argument 'delivery-id'/],
      [["deliveries", "resend"], /missing required argument 'delivery-id'/],
      [["attempts", "list", MISSING_ID, "--limit", "0"], /whole number of at least 1/],
    ];
    for (const [args, message] of cases) {
      const result = await runCli(args, { env });
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.equal(result.stdout, "");
      assert.match(result.stderr, message);
    }
  });
});
