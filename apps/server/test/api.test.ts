import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, DeliveryStatus, HttpQueueError, type RegisterWebhookRequest } from "@httpqueue/sdk";
import { DisabledReason, Ordering, SignatureScheme, type DeepPartial } from "@httpqueue/proto";
import { startTestServer, type TestServer } from "./helpers/server.js";

const URL_OK = "http://127.0.0.1:9/hook";
const MISSING_ID = "0190a0d4-0000-7000-8000-000000000000";

async function rejectsWith(promise: Promise<unknown>, code: Code, message: RegExp) {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof HttpQueueError, `expected an HttpQueueError, got ${String(err)}`);
    assert.equal(err.codeName, Code[code]);
    assert.match(err.details, message);
    return true;
  });
}

describe("webhook API", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server.stop();
  });

  it("registers, reads, updates and lists webhooks", async () => {
    const { client } = server;
    const registered = await client.registerWebhook({
      namespace: "api",
      event: "created",
      url: URL_OK,
      method: "patch",
      headers: { "X-Team": "billing" },
      timeout: 12,
      description: "first",
    });
    const webhook = registered.webhook;
    assert.ok(webhook);
    assert.equal(webhook.id, registered.webhookId);
    assert.deepEqual(
      { ...webhook, createdAt: undefined, updatedAt: undefined },
      {
        id: registered.webhookId,
        namespace: "api",
        event: "created",
        url: URL_OK,
        method: "PATCH",
        headers: { "X-Team": "billing" },
        timeout: 12,
        active: true,
        description: "first",
        createdAt: undefined,
        updatedAt: undefined,
        // The server's delivery policy, and no trouble yet.
        retryPolicy: undefined,
        rateLimitPerSecond: 0,
        maxInFlight: 0,
        ordering: Ordering.ORDERING_NONE,
        disabledReason: DisabledReason.DISABLED_REASON_UNSPECIFIED,
        disabledAt: undefined,
        failingSince: undefined,
        pacePerSecond: 0,
        pausedUntil: undefined,
        // Every payload.
        filter: "",
        // HMAC-SHA256 by default, and no rotation under way.
        signatureScheme: SignatureScheme.SIGNATURE_SCHEME_HMAC_SHA256,
        previousSecretExpiresAt: undefined,
      },
    );

    // Only the fields that are set change.
    const { webhook: updated } = await client.updateWebhook({
      webhookId: registered.webhookId,
      url: "https://example.test/new",
      timeout: 300,
    });
    assert.equal(updated?.url, "https://example.test/new");
    assert.equal(updated.timeout, 300);
    assert.equal(updated.method, "PATCH");
    assert.deepEqual(updated.headers, { "X-Team": "billing" });
    assert.equal(updated.description, "first");
    assert.ok((updated.updatedAt?.getTime() ?? 0) >= (webhook.updatedAt?.getTime() ?? Infinity));

    const { webhook: cleared } = await client.updateWebhook({
      webhookId: registered.webhookId,
      headers: { values: {} },
      description: "",
      method: "POST",
    });
    assert.deepEqual(cleared?.headers, {});
    assert.equal(cleared.description, "");
    assert.equal(cleared.method, "POST");

    const { webhook: same } = await client.updateWebhook({ webhookId: registered.webhookId });
    assert.equal(same?.url, "https://example.test/new", "an empty update changes nothing");

    const status = await client.getWebhookStatus({ identifier: { $case: "webhookId", value: registered.webhookId } });
    assert.equal(status.webhook?.id, registered.webhookId);
    assert.deepEqual(status.counts, []);
    assert.deepEqual(status.deliveries, []);
  });

  it("pages through webhooks, per namespace or across all", async () => {
    const { client } = server;
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      const { webhookId } = await client.registerWebhook({ namespace: "paging", event: `e${i}`, url: URL_OK });
      ids.push(webhookId);
    }
    await client.registerWebhook({ namespace: "paging-other", event: "x", url: URL_OK });

    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await client.listWebhooks({ namespace: "paging", pageSize: 3, pageToken });
      assert.ok(page.webhooks.length <= 3);
      seen.push(...page.webhooks.map((w) => w.id));
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken);
    assert.deepEqual(seen, ids, "every webhook once, in registration order");
    assert.equal(pages, 3);

    const iterated: string[] = [];
    for await (const w of client.listWebhooksAsync({ namespace: "paging", pageSize: 2 })) iterated.push(w.id);
    assert.deepEqual(iterated, ids);

    const all = [];
    for await (const w of client.listWebhooksAsync({ pageSize: 1000 })) all.push(w);
    assert.ok(all.some((w) => w.namespace === "paging-other"));
    assert.ok(all.length >= 8);
  });

  it("pages through a webhook's deliveries, most recent first, with counts per status", async () => {
    const { client, db } = server;
    // An inactive webhook gets no deliveries from the worker; add some directly.
    const { webhookId } = await client.registerWebhook({ namespace: "st", event: "e", url: URL_OK, active: false });
    const events = await db.sql<{ id: string }[]>`
      insert into event_records (namespace, event, payload, ttl_seconds, expires_at)
      select 'st', 'e', '{}', 60, now() + interval '1 minute' from generate_series(1, 5) returning id`;
    const statuses = ["succeeded", "succeeded", "failed", "retrying", "succeeded"];
    const deliveryIds: string[] = [];
    for (const [i, ev] of events.entries()) {
      const [row] = await db.sql<{ id: string }[]>`
        insert into webhook_deliveries (webhook_id, event_id, status, max_attempts)
        values (${webhookId}, ${ev.id}, ${statuses[i] ?? "pending"}, 10) returning id`;
      deliveryIds.push(row!.id);
    }
    const first = await client.getWebhookStatus({
      identifier: { $case: "webhookId", value: webhookId },
      pageSize: 2,
    });
    assert.deepEqual(first.counts, [
      { status: DeliveryStatus.DELIVERY_STATUS_RETRYING, count: 1 },
      { status: DeliveryStatus.DELIVERY_STATUS_SUCCEEDED, count: 3 },
      { status: DeliveryStatus.DELIVERY_STATUS_FAILED, count: 1 },
    ]);
    const newestFirst = [...deliveryIds].reverse();
    assert.deepEqual(
      first.deliveries.map((d) => d.id),
      newestFirst.slice(0, 2),
    );
    const second = await client.getWebhookStatus({
      identifier: { $case: "webhookId", value: webhookId },
      pageSize: 2,
      pageToken: first.nextPageToken,
    });
    assert.deepEqual(
      second.deliveries.map((d) => d.id),
      newestFirst.slice(2, 4),
    );
    const third = await client.getWebhookStatus({
      identifier: { $case: "webhookId", value: webhookId },
      pageSize: 2,
      pageToken: second.nextPageToken,
    });
    assert.deepEqual(
      third.deliveries.map((d) => d.id),
      newestFirst.slice(4),
    );
    assert.equal(third.nextPageToken, "");
  });

  it("pages through an event's deliveries, oldest first", async () => {
    const { client, db } = server;
    const [event] = await db.sql<{ id: string }[]>`
      insert into event_records (namespace, event, payload, ttl_seconds, expires_at)
      values ('evpage', 'e', '{}', 60, now() + interval '1 minute') returning id`;
    const deliveryIds: string[] = [];
    for (let i = 0; i < 5; i++) {
      // Inactive webhooks: the worker leaves these deliveries alone.
      const { webhookId } = await client.registerWebhook({
        namespace: "evpage",
        event: "e",
        url: URL_OK,
        active: false,
      });
      const [row] = await db.sql<{ id: string }[]>`
        insert into webhook_deliveries (webhook_id, event_id, max_attempts)
        values (${webhookId}, ${event!.id}, 10) returning id`;
      deliveryIds.push(row!.id);
    }
    const first = await client.getWebhookStatus({ eventId: event!.id, pageSize: 2 });
    assert.equal(first.event?.id, event!.id);
    assert.deepEqual(
      first.deliveries.map((d) => d.id),
      deliveryIds.slice(0, 2),
    );
    const second = await client.getWebhookStatus({ eventId: event!.id, pageSize: 2, pageToken: first.nextPageToken });
    assert.deepEqual(
      second.deliveries.map((d) => d.id),
      deliveryIds.slice(2, 4),
    );
    const all = [];
    for await (const d of client.listDeliveriesAsync({ eventId: event!.id, pageSize: 2 })) all.push(d.id);
    assert.deepEqual(all, deliveryIds);
    const byDefault = await client.getWebhookStatus({ eventId: event!.id });
    assert.equal(byDefault.deliveries.length, 5);
    assert.equal(byDefault.nextPageToken, "");
  });

  it("shows a pushed event's deliveries as soon as PushEvent answers, one per active webhook", async () => {
    const { client } = server;
    const active = [];
    for (let i = 0; i < 3; i++) {
      active.push((await client.registerWebhook({ namespace: "atonce", event: "e", url: URL_OK })).webhookId);
    }
    await client.registerWebhook({ namespace: "atonce", event: "e", url: URL_OK, active: false });
    const { eventId } = await client.pushEvent({ namespace: "atonce", event: "e", payload: "{}" });
    const status = await client.getWebhookStatus({ eventId });
    assert.deepEqual(status.deliveries.map((d) => d.webhookId).sort(), active.sort());
  });

  it("answers NOT_FOUND for ids that do not exist", async () => {
    const { client } = server;
    await rejectsWith(
      client.updateWebhook({ webhookId: MISSING_ID, active: true }),
      Code.NOT_FOUND,
      /webhook .* not found/,
    );
    await rejectsWith(client.updateWebhook({ webhookId: MISSING_ID }), Code.NOT_FOUND, /not found/);
    await rejectsWith(client.unregisterWebhook({ webhookId: MISSING_ID }), Code.NOT_FOUND, /not found/);
    await rejectsWith(
      client.getWebhookStatus({ identifier: { $case: "webhookId", value: MISSING_ID } }),
      Code.NOT_FOUND,
      /webhook/,
    );
    await rejectsWith(
      client.getWebhookStatus({ identifier: { $case: "eventId", value: MISSING_ID } }),
      Code.NOT_FOUND,
      /event/,
    );
  });

  describe("rejects bad input with INVALID_ARGUMENT naming the field", () => {
    const valid: DeepPartial<RegisterWebhookRequest> = { namespace: "ns", event: "ev", url: URL_OK };
    const registerCases: [string, DeepPartial<RegisterWebhookRequest>, RegExp][] = [
      ["empty namespace", { namespace: "" }, /^namespace: is required/],
      ["namespace with a space", { namespace: "a b" }, /^namespace: may contain only/],
      ["namespace starting with '-'", { namespace: "-a" }, /^namespace: /],
      ["long namespace", { namespace: "n".repeat(129) }, /^namespace: must be at most 128/],
      ["empty event", { event: "" }, /^event: is required/],
      ["event with a slash", { event: "a/b" }, /^event: /],
      ["empty url", { url: "" }, /^url: is required/],
      ["relative url", { url: "/hook" }, /^url: must be an absolute http or https URL/],
      ["ftp url", { url: "ftp://example.test/x" }, /^url: must be an absolute http/],
      ["url with credentials", { url: "http://user:pw@example.test/" }, /^url: must not contain credentials/],
      ["long url", { url: `http://example.test/${"a".repeat(2100)}` }, /^url: must be at most/],
      ["unknown method", { method: "TRACE" }, /^method: must be one of GET, POST, PUT, PATCH, DELETE/],
      ["negative timeout", { timeout: -1 }, /^timeout: must be between 1 and 300/],
      ["timeout over 300", { timeout: 301 }, /^timeout: must be between 1 and 300/],
      ["bad header name", { headers: { "Bad Name": "x" } }, /^headers: "Bad Name" is not a valid header name/],
      ["header with CRLF", { headers: { "X-A": "a\r\nInjected: yes" } }, /^headers: the value of "X-A"/],
      ["Host header", { headers: { Host: "evil.test" } }, /^headers: "Host" is set by the HTTP client/],
      ["Content-Length header", { headers: { "content-length": "1" } }, /^headers: "content-length"/],
      ["Transfer-Encoding header", { headers: { "Transfer-Encoding": "chunked" } }, /^headers: /],
      ["Connection header", { headers: { Connection: "close" } }, /^headers: "Connection"/],
      [
        "webhook-* header",
        { headers: { "Webhook-Signature": "v1,x" } },
        /^headers: "Webhook-Signature": webhook-\* headers are reserved/,
      ],
      ["same header twice", { headers: { "X-A": "1", "x-a": "2" } }, /^headers: "x-a" appears more than once/],
      [
        "too many headers",
        { headers: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`X-${i}`, "v"])) },
        /^headers: must have at most 50/,
      ],
      ["long description", { description: "d".repeat(1025) }, /^description: must be at most 1024/],
      ["NUL in description", { description: "a\u0000b" }, /^description: must not contain NUL/],
    ];
    for (const [name, change, message] of registerCases) {
      it(`RegisterWebhook: ${name}`, async () => {
        await rejectsWith(server.client.registerWebhook({ ...valid, ...change }), Code.INVALID_ARGUMENT, message);
      });
    }

    it("UpdateWebhook: each field, and the id", async () => {
      const { client } = server;
      const { webhookId } = await client.registerWebhook(valid);
      const cases: [Parameters<typeof client.updateWebhook>[0], RegExp][] = [
        [{ webhookId: "" }, /^webhook_id: is required/],
        [{ webhookId: "not-a-uuid" }, /^webhook_id: "not-a-uuid" is not a valid id/],
        [{ webhookId, url: "nope" }, /^url: /],
        [{ webhookId, url: "" }, /^url: is required/],
        [{ webhookId, method: "CONNECT" }, /^method: /],
        [{ webhookId, timeout: 0 }, /^timeout: must be between 1 and 300/],
        [{ webhookId, headers: { values: { "X-Bad\n": "v" } } }, /^headers: /],
        [{ webhookId, description: "x".repeat(2000) }, /^description: /],
      ];
      for (const [request, message] of cases) {
        await rejectsWith(client.updateWebhook(request), Code.INVALID_ARGUMENT, message);
      }
      const { webhook } = await client.updateWebhook({ webhookId });
      assert.equal(webhook?.url, URL_OK, "rejected updates changed nothing");
    });

    it("UnregisterWebhook, ListWebhooks and GetWebhookStatus", async () => {
      const { client } = server;
      await rejectsWith(client.unregisterWebhook({ webhookId: "x" }), Code.INVALID_ARGUMENT, /^webhook_id: /);
      await rejectsWith(client.listWebhooks({ namespace: "bad ns" }), Code.INVALID_ARGUMENT, /^namespace: /);
      await rejectsWith(
        client.listWebhooks({ pageSize: -1 }),
        Code.INVALID_ARGUMENT,
        /^page_size: must be between 1 and 1000/,
      );
      await rejectsWith(client.listWebhooks({ pageSize: 1001 }), Code.INVALID_ARGUMENT, /^page_size: /);
      await rejectsWith(
        client.listWebhooks({ pageToken: "garbage!" }),
        Code.INVALID_ARGUMENT,
        /^page_token: is not a token/,
      );
      await rejectsWith(client.getWebhookStatus({}), Code.INVALID_ARGUMENT, /^identifier: set webhook_id or event_id/);
      await rejectsWith(
        client.getWebhookStatus({ identifier: { $case: "eventId", value: "123" } }),
        Code.INVALID_ARGUMENT,
        /^event_id: /,
      );
      await rejectsWith(
        client.getWebhookStatus({ identifier: { $case: "webhookId", value: MISSING_ID }, pageSize: 5000 }),
        Code.INVALID_ARGUMENT,
        /^page_size: /,
      );
    });
  });
});
