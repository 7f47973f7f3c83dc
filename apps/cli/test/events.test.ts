import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { eventually, startReceiver, type Receiver } from "@httpqueue/testkit";
import {
  ANSI,
  coloured,
  HAS_SCRIPT,
  ok,
  runInTerminal,
  okJson,
  runCli,
  startServer,
  TIME,
  type Server,
} from "./helpers.js";

interface DeliveryJson {
  id: string;
  webhookId: string;
  eventId: string;
  status: string;
  attemptCount: number;
  maxAttempts: number;
  responseCode: number;
  completedAt: string | null;
}

interface EventStatusJson {
  event: {
    id: string;
    payload: string;
    ttlSeconds: number;
    metadata: Record<string, string>;
    idempotencyKey: string;
    orderingKey: string;
  };
  deliveries: DeliveryJson[];
}

interface WebhookStatusJson {
  webhook: { id: string };
  counts: { status: string; count: number }[];
  deliveries: DeliveryJson[];
  nextPageToken: string;
}

describe("webhookctl events push and status", () => {
  let server: Server;
  let receiver: Receiver;
  let env: Record<string, string>;
  let dir: string;
  let webhookId: string;

  /** Pushes with --json and waits until the event's delivery succeeded. */
  const push = async (args: string[], options: { input?: string } = {}) => {
    const { eventId } = await okJson<{ eventId: string; duplicate: boolean }>(
      ["events", "push", "--namespace", "shop", "--event", "order", ...args],
      { env, ...options },
    );
    return eventId;
  };
  const delivered = (eventId: string) =>
    eventually(async () => {
      const status = await okJson<EventStatusJson>(["status", "--event", eventId], { env });
      return status.deliveries[0]?.status === "DELIVERY_STATUS_SUCCEEDED" ? status : undefined;
    });
  const bodyOf = async (eventId: string) => {
    const status = await delivered(eventId);
    const request = receiver.requests.find((r) => r.headers["webhook-id"] === status.deliveries[0]?.id);
    assert.ok(request, "the receiver got the delivery");
    return request.body;
  };

  before(async () => {
    server = await startServer();
    receiver = await startReceiver();
    env = { WEBHOOKCTL_ADDR: server.address };
    dir = await mkdtemp(join(tmpdir(), "webhookctl-test-"));
    ({ webhookId } = await okJson<{ webhookId: string }>(
      ["webhooks", "register", "--namespace", "shop", "--event", "order", "--url", `${receiver.url}/orders`],
      { env },
    ));
  });
  after(async () => {
    await server.stop();
    await receiver.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("pushes a payload given as an argument and delivers it byte for byte", async () => {
    const result = await runCli(["events", "push", "--namespace", "shop", "--event", "order", '{ "id": 1 }'], { env });
    assert.equal(result.code, 0, result.stderr);
    const eventId = /^Pushed event (\S+) \(shop\/order\)\.$/m.exec(result.stdout)?.[1];
    assert.ok(eventId, result.stdout);
    assert.match(result.stdout, new RegExp(`webhookctl status --event ${eventId}`));
    assert.equal(await bodyOf(eventId), '{ "id": 1 }');
  });

  it("reads the payload from @file, from stdin with -, and from stdin when it is not a terminal", async () => {
    const file = join(dir, "order.json");
    await writeFile(file, '{"id": 2, "from": "file"}\n');
    assert.equal(await bodyOf(await push([`@${file}`])), '{"id": 2, "from": "file"}\n');
    assert.equal(await bodyOf(await push(["-"], { input: '{"id": 3}' })), '{"id": 3}');
    assert.equal(await bodyOf(await push([], { input: '["implicit", 4]' })), '["implicit", 4]');
  });

  it("sends metadata, a time to live, an idempotency key and an ordering key", async () => {
    const args = [
      ...["--metadata", "source=cli", "--metadata", "team=a=b", "--ttl", "1h", "--idempotency-key", "order-5"],
      ...["--ordering-key", "order-5-lines"],
    ];
    const first = await okJson<{ eventId: string; duplicate: boolean }>(
      ["events", "push", "--namespace", "shop", "--event", "order", ...args, '{"id":5}'],
      { env },
    );
    assert.equal(first.duplicate, false);
    const again = await runCli(["events", "push", "--namespace", "shop", "--event", "order", ...args, '{"id":5}'], {
      env,
    });
    assert.equal(again.code, 0);
    assert.equal(
      again.stdout,
      `Event ${first.eventId} was already pushed with idempotency key order-5: nothing new is delivered.\n`,
    );
    const status = await delivered(first.eventId);
    assert.deepEqual(
      {
        metadata: status.event.metadata,
        ttl: status.event.ttlSeconds,
        key: status.event.idempotencyKey,
        ordering: status.event.orderingKey,
      },
      { metadata: { source: "cli", team: "a=b" }, ttl: 3600, key: "order-5", ordering: "order-5-lines" },
    );
    assert.equal(status.deliveries.length, 1, "the repeat delivered nothing new");
  });

  it("fails with exit 1 and the server's message when the idempotency key holds another payload", async () => {
    const args = ["events", "push", "--namespace", "shop", "--event", "order", "--idempotency-key", "order-6"];
    const { eventId } = await okJson<{ eventId: string }>([...args, '{"id":6}'], { env });
    const other = await runCli([...args, '{"id":7}'], { env });
    assert.equal(other.code, 1, other.stderr);
    assert.equal(other.stdout, "");
    assert.equal(
      other.stderr,
      `error: ALREADY_EXISTS: idempotency_key: "order-6" was used in namespace "shop" by event ${eventId} with a different payload; ` +
        "a repeat within the idempotency window must have the same event name and payload\n",
    );
  });

  it("refuses a payload that is missing, empty, unreadable or not JSON with exit 2", async () => {
    const cases: [string[], string | undefined, RegExp][] = [
      [["{not json"], undefined, /the payload \(argument\) is not valid JSON/],
      [[`@${join(dir, "missing.json")}`], undefined, /cannot read the payload file .*missing\.json \(ENOENT\)/],
      [["-"], "", /the payload \(stdin\) is empty/],
      [[], undefined, /the payload \(stdin\) is empty/],
      [["-"], "not json", /the payload \(stdin\) is not valid JSON/],
    ];
    for (const [args, input, message] of cases) {
      const result = await runCli(["events", "push", "--namespace", "shop", "--event", "order", ...args], {
        env,
        ...(input === undefined ? {} : { input }),
      });
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.equal(result.stdout, "");
      assert.match(result.stderr, message);
      assert.match(result.stderr, /\(Run 'webhookctl events push --help' for usage\.\)/);
    }
    const noEvent = await runCli(["events", "push", "--namespace", "shop", "{}"], { env });
    assert.equal(noEvent.code, 2);
    assert.match(noEvent.stderr, /required option '--event <name>' not specified/);
    const badTtl = await runCli(["events", "push", "--namespace", "shop", "--event", "o", "--ttl", "soon", "{}"], {
      env,
    });
    assert.equal(badTtl.code, 2);
    const serverSide = await runCli(["events", "push", "--namespace", "shop", "--event", "o", "--ttl", "9999d", "{}"], {
      env,
    });
    assert.equal(serverSide.code, 1);
    assert.match(serverSide.stderr, /^error: INVALID_ARGUMENT: ttl_seconds: must be between 1 and \d+ seconds/);
  });

  it("status --event shows the event and its deliveries, coloured only when asked", async () => {
    const eventId = await push(['{"id":6}']);
    await delivered(eventId);
    const human = await runCli(["status", "--event", eventId], { env });
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, new RegExp(`^Event {12}${eventId}$`, "m"));
    assert.match(human.stdout, /^Payload {10}\{"id":6\}$/m);
    assert.match(human.stdout, new RegExp(`^Created {10}${TIME.source}$`, "m"));
    const [header, row] = human.stdout.split("\n\n")[1]!.split("\n");
    assert.match(header!, /^DELIVERY\s+WEBHOOK\s+STATUS\s+ATTEMPTS\s+HTTP\s+LAST ATTEMPT\s+NEXT \/ DONE\s+ERROR$/);
    // Each value starts at its column (searching the row for "200" could find it inside an id).
    const at = (column: string) => row!.slice(header!.indexOf(column));
    assert.ok(at("WEBHOOK").startsWith(`${webhookId} `), at("WEBHOOK"));
    assert.ok(at("STATUS").startsWith("SUCCEEDED "), at("STATUS"));
    assert.ok(at("ATTEMPTS").startsWith("1/"), at("ATTEMPTS"));
    assert.ok(at("HTTP").startsWith("200 "), at("HTTP"));
    assert.match(row!.slice(header!.indexOf("LAST ATTEMPT")), TIME);
    assert.doesNotMatch(human.stdout, ANSI, "no colour when stdout is not a terminal");

    const forced = await ok(["status", "--event", eventId], { env: { ...env, FORCE_COLOR: "1" } });
    assert.ok(forced.includes(coloured(32, "SUCCEEDED")), `green SUCCEEDED: ${JSON.stringify(forced)}`);
    const noColor = await ok(["status", "--event", eventId], { env: { ...env, FORCE_COLOR: "1", NO_COLOR: "1" } });
    assert.doesNotMatch(noColor, ANSI, "NO_COLOR wins");
    const json = await ok(["status", "--event", eventId, "--json"], { env: { ...env, FORCE_COLOR: "1" } });
    assert.doesNotMatch(json, ANSI, "never colour in JSON");

    const parsed = JSON.parse(json) as EventStatusJson;
    assert.equal(parsed.event.id, eventId);
    assert.equal(parsed.event.payload, '{"id":6}');
    const [delivery] = parsed.deliveries;
    assert.deepEqual(
      { webhookId: delivery?.webhookId, status: delivery?.status, code: delivery?.responseCode },
      { webhookId, status: "DELIVERY_STATUS_SUCCEEDED", code: 200 },
    );
    assert.ok(!Number.isNaN(Date.parse(delivery!.completedAt!)), "ISO times");
  });

  it(
    "colours statuses on a terminal, unless NO_COLOR is set",
    { skip: !HAS_SCRIPT && "no util-linux script" },
    async () => {
      const eventId = await push(['{"id":7}']);
      await delivered(eventId);
      const tty = await runInTerminal(["status", "--event", eventId], env);
      assert.equal(tty.code, 0, tty.stdout);
      assert.ok(tty.stdout.includes(coloured(32, "SUCCEEDED")), `green SUCCEEDED: ${JSON.stringify(tty.stdout)}`);
      const noColor = await runInTerminal(["status", "--event", eventId], { ...env, NO_COLOR: "1" });
      assert.equal(noColor.code, 0, noColor.stdout);
      assert.match(noColor.stdout, /SUCCEEDED/);
      assert.doesNotMatch(noColor.stdout, ANSI);
      const json = await runInTerminal(["status", "--event", eventId, "--json"], env);
      assert.doesNotMatch(json.stdout, ANSI);
      assert.equal((JSON.parse(json.stdout) as EventStatusJson).event.id, eventId);
    },
  );

  it("status --webhook shows counts and pages through deliveries, newest first", async () => {
    const { webhookId: id } = await okJson<{ webhookId: string }>(
      ["webhooks", "register", "--namespace", "paged", "--event", "e", "--url", `${receiver.url}/paged`],
      { env },
    );
    const events: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { eventId } = await okJson<{ eventId: string }>(
        ["events", "push", "--namespace", "paged", "--event", "e", `{"n":${i}}`],
        { env },
      );
      events.push(eventId);
    }
    await eventually(async () => {
      const s = await okJson<WebhookStatusJson>(["status", "--webhook", id], { env });
      return s.counts[0]?.count === 3 ? s : undefined;
    });

    const first = await runCli(["status", "--webhook", id, "--limit", "2"], { env });
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, new RegExp(`^Webhook {5}${id}$`, "m"));
    assert.match(first.stdout, /^Deliveries {2}3 SUCCEEDED$/m);
    assert.match(first.stdout, /^DELIVERY\s+EVENT\s+STATUS/m);
    const token = /add --page-token (\S+)/.exec(first.stderr)?.[1];
    assert.ok(token, first.stderr);

    const page1 = await okJson<WebhookStatusJson>(["status", "--webhook", id, "--limit", "2"], { env });
    assert.deepEqual(page1.counts, [{ status: "DELIVERY_STATUS_SUCCEEDED", count: 3 }]);
    assert.deepEqual(
      page1.deliveries.map((d) => d.eventId),
      [events[2], events[1]],
    );
    assert.equal(page1.nextPageToken, token);
    const page2 = await okJson<WebhookStatusJson>(["status", "--webhook", id, "--limit", "2", "--page-token", token], {
      env,
    });
    assert.deepEqual(
      page2.deliveries.map((d) => d.eventId),
      [events[0]],
    );
    assert.equal(page2.nextPageToken, "");
  });

  it("status needs exactly one of --webhook and --event", async () => {
    for (const args of [[], ["--webhook", webhookId, "--event", webhookId], ["--event", webhookId, "--limit", "2"]]) {
      const result = await runCli(["status", ...args], { env });
      assert.equal(result.code, 2, `status ${args.join(" ")}: ${result.stderr}`);
      assert.equal(result.stdout, "");
      assert.match(result.stderr, /^error: /);
    }
    const unknown = await runCli(["status", "--event", "0190a0d4-0000-7000-8000-000000000000"], { env });
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stderr, "error: NOT_FOUND: event 0190a0d4-0000-7000-8000-000000000000 not found\n");
  });
});
