import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Client, credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import {
  GetEventRequest,
  GetSigningSecretRequest,
  GetWebhookStatusRequest,
  ListAttemptsRequest,
  ListEventsRequest,
  ListWebhooksRequest,
  PushEventRequest,
  RegisterWebhookRequest,
  RecoverWebhookRequest,
  ReplayMissedRequest,
  ResendDeliveryRequest,
  RotateSecretRequest,
  UnregisterWebhookRequest,
  UpdateWebhookRequest,
  WatchDeliveriesRequest,
  WebhookServiceService,
} from "@httpqueue/proto";
import { createClient, HttpQueueError, type HttpQueueClient } from "@httpqueue/sdk";
import { terminate, type ServerProcess, type TestDatabase } from "@httpqueue/testkit";
import { createMigratedDatabase, spawnServer } from "./helpers/server.js";

// Hostile strings in every string field of every RPC: each call answers
// INVALID_ARGUMENT with a message naming the field, and the server stays up.

/** Stands in for a string the test then corrupts into bytes that are not UTF-8. */
const MARKER = "@@LONE@@";
/** As long as MARKER: "a", a UTF-16 surrogate encoded as if it were a character (not UTF-8), "bcde". */
const NOT_UTF8 = Buffer.from([0x61, 0xed, 0xa0, 0xbd, 0x62, 0x63, 0x64, 0x65]);

const HOSTILE: Record<string, string> = {
  "a lone surrogate (bytes that are not UTF-8)": MARKER,
  "a NUL character": "a\u0000b",
  "control characters": "a\u0001\u001b[31mb\u007f",
  "1 MiB": "x".repeat(1024 * 1024),
};

const ID = "0192f5a0-0000-7000-8000-000000000000";
type Method = keyof typeof WebhookServiceService;
const MESSAGES: Record<Method, { fromPartial(o: never): unknown }> = {
  registerWebhook: RegisterWebhookRequest,
  updateWebhook: UpdateWebhookRequest,
  unregisterWebhook: UnregisterWebhookRequest,
  rotateSecret: RotateSecretRequest,
  getSigningSecret: GetSigningSecretRequest,
  listWebhooks: ListWebhooksRequest,
  pushEvent: PushEventRequest,
  getWebhookStatus: GetWebhookStatusRequest,
  listAttempts: ListAttemptsRequest,
  getEvent: GetEventRequest,
  listEvents: ListEventsRequest,
  resendDelivery: ResendDeliveryRequest,
  recoverWebhook: RecoverWebhookRequest,
  replayMissed: ReplayMissedRequest,
  watchDeliveries: WatchDeliveriesRequest,
};

/** Each RPC's valid request, and how to put a hostile string in each of its string fields. */
const CASES: { method: Method; field: string; request: (s: string) => Record<string, unknown> }[] = [
  ...(["namespace", "event", "url", "method", "description"] as const).map((field) => ({
    method: "registerWebhook" as const,
    field,
    request: (s: string) => ({ namespace: "ns", event: "e", url: "https://example.com/h", [field]: s }),
  })),
  {
    method: "registerWebhook",
    field: "headers",
    request: (s) => ({ namespace: "ns", event: "e", url: "https://example.com/h", headers: { "X-A": s } }),
  },
  {
    method: "registerWebhook",
    field: "headers",
    request: (s) => ({ namespace: "ns", event: "e", url: "https://example.com/h", headers: { [s]: "v" } }),
  },
  { method: "updateWebhook", field: "webhook_id", request: (s) => ({ webhookId: s }) },
  ...(["url", "method", "description"] as const).map((field) => ({
    method: "updateWebhook" as const,
    field,
    request: (s: string) => ({ webhookId: ID, [field]: s }),
  })),
  { method: "updateWebhook", field: "headers", request: (s) => ({ webhookId: ID, headers: { values: { "X-A": s } } }) },
  { method: "unregisterWebhook", field: "webhook_id", request: (s) => ({ webhookId: s }) },
  { method: "rotateSecret", field: "webhook_id", request: (s) => ({ webhookId: s }) },
  { method: "rotateSecret", field: "secret", request: (s) => ({ webhookId: ID, secret: s }) },
  { method: "rotateSecret", field: "secret", request: (s) => ({ webhookId: ID, secret: `whsec_${s}` }) },
  { method: "rotateSecret", field: "secret", request: (s) => ({ webhookId: ID, secret: `whsk_${s}` }) },
  { method: "getSigningSecret", field: "webhook_id", request: (s) => ({ webhookId: s }) },
  { method: "listWebhooks", field: "namespace", request: (s) => ({ namespace: s }) },
  { method: "listWebhooks", field: "page_token", request: (s) => ({ pageToken: s }) },
  ...(["namespace", "event", "payload", "idempotency_key"] as const).map((field) => ({
    method: "pushEvent" as const,
    field,
    request: (s: string) => ({
      namespace: "ns",
      event: "e",
      payload: "{}",
      [field.replace(/_(.)/g, (_: string, c: string) => c.toUpperCase())]: s,
    }),
  })),
  {
    method: "pushEvent",
    field: "metadata",
    request: (s) => ({ namespace: "ns", event: "e", payload: "{}", metadata: { k: s } }),
  },
  {
    method: "pushEvent",
    field: "metadata",
    request: (s) => ({ namespace: "ns", event: "e", payload: "{}", metadata: { [s]: "v" } }),
  },
  {
    method: "getWebhookStatus",
    field: "webhook_id",
    request: (s) => ({ identifier: { $case: "webhookId", value: s } }),
  },
  { method: "getWebhookStatus", field: "event_id", request: (s) => ({ identifier: { $case: "eventId", value: s } }) },
  {
    method: "getWebhookStatus",
    field: "page_token",
    request: (s) => ({ identifier: { $case: "eventId", value: ID }, pageToken: s }),
  },
  { method: "listAttempts", field: "delivery_id", request: (s) => ({ deliveryId: s }) },
  { method: "listAttempts", field: "page_token", request: (s) => ({ deliveryId: ID, pageToken: s }) },
  { method: "getEvent", field: "event_id", request: (s) => ({ eventId: s }) },
  { method: "listEvents", field: "namespace", request: (s) => ({ namespace: s }) },
  { method: "listEvents", field: "event", request: (s) => ({ namespace: "ns", event: s }) },
  { method: "listEvents", field: "page_token", request: (s) => ({ pageToken: s }) },
  { method: "resendDelivery", field: "delivery_id", request: (s) => ({ deliveryId: s }) },
  { method: "recoverWebhook", field: "webhook_id", request: (s) => ({ webhookId: s, since: new Date(0) }) },
  { method: "replayMissed", field: "webhook_id", request: (s) => ({ webhookId: s, since: new Date(0) }) },
  ...(["namespace", "webhook_id", "event_id"] as const).map((field) => ({
    method: "watchDeliveries" as const,
    field,
    request: (s: string) => ({ [field.replace(/_(.)/g, (_: string, c: string) => c.toUpperCase())]: s }),
  })),
];

/** Calls `method` with raw control over the bytes: MARKER becomes NOT_UTF8 on the wire. */
function call(client: Client, method: Method, request: Record<string, unknown>): Promise<ServiceError | undefined> {
  const def = WebhookServiceService[method];
  const serialize = (value: unknown) => {
    const bytes = (def.requestSerialize as (v: unknown) => Buffer)(value);
    const at = bytes.indexOf(MARKER);
    if (at >= 0) NOT_UTF8.copy(bytes, at);
    return bytes;
  };
  const message = MESSAGES[method].fromPartial(request as never);
  if (def.responseStream) {
    return new Promise((resolve) => {
      const stream = client.makeServerStreamRequest(def.path, serialize, (b: Buffer) => b, message, new Metadata(), {
        deadline: Date.now() + 10_000,
      });
      stream.on("data", () => undefined);
      stream.on("error", (err: ServiceError) => {
        resolve(err);
      });
      stream.on("end", () => {
        resolve(undefined);
      });
    });
  }
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      def.path,
      serialize,
      (b: Buffer) => b,
      message,
      new Metadata(),
      { deadline: Date.now() + 10_000 },
      (err) => {
        resolve(err ?? undefined);
      },
    );
  });
}

describe("hostile strings in every string field of every RPC", () => {
  let db: TestDatabase;
  let server: ServerProcess;
  let raw: Client;
  let sdk: HttpQueueClient;

  before(async () => {
    db = await createMigratedDatabase();
    server = await spawnServer({ DATABASE_URL: db.url });
    raw = new Client(server.address, credentials.createInsecure(), {
      "grpc.max_send_message_length": 8 * 1024 * 1024,
    });
    sdk = createClient({ address: server.address });
  });
  after(async () => {
    raw.close();
    sdk.close();
    await terminate(server);
    await db.drop();
  });

  for (const { method, field, request } of CASES) {
    for (const [what, value] of Object.entries(HOSTILE)) {
      it(`${method} ${field}: ${what}`, async () => {
        const err = await call(raw, method, request(value));
        assert.ok(err, "the call was refused");
        assert.equal(err.code, status.INVALID_ARGUMENT, `${status[err.code]}: ${err.details}`);
        assert.ok(err.details.startsWith(field), `the message names ${field}: ${err.details}`);
        assert.ok(err.details.length <= 1000, "the message is short");
        // eslint-disable-next-line no-control-regex -- control characters are what it looks for
        assert.ok(!/[\u0000-\u001f]/.test(err.details), "the message has no control characters");
      });
    }
  }

  it("a payload that is not JSON and quotes half of a surrogate pair in its parse error", async () => {
    // The parser's message for "🚀" names '\ud83d': it used to reach grpc-js as is and end the process.
    const err = await sdk.pushEvent({ namespace: "f", event: "e", payload: "🚀" }).catch((e: unknown) => e);
    assert.ok(err instanceof HttpQueueError);
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.match(err.details, /^payload: must be valid JSON \(Unexpected token '\uFFFD'/);
  });

  it("the SDK refuses a lone surrogate before sending (UTF-8 cannot carry it)", async () => {
    const err = await sdk.pushEvent({ namespace: "f", event: "e", payload: '"\uD83D"' }).catch((e: unknown) => e);
    assert.ok(err instanceof HttpQueueError);
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.match(err.details, /^payload: holds a lone surrogate/);
  });

  it("the server is still up and serving", async () => {
    const answer = await Promise.race([server.exited, sdk.listWebhooks({})]);
    assert.equal(typeof answer, "object", `the server exited (${JSON.stringify(answer)}):\n${server.output()}`);
    const { eventId } = await sdk.pushEvent({ namespace: "f", event: "e", payload: '{"ok":"🚀"}' });
    assert.match(eventId, /^[0-9a-f-]{36}$/);
  });
});
