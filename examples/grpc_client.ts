/**
 * The quick start, with @httpqueue/sdk: register a webhook, push an event and
 * follow its delivery.
 *
 *   HTTPQUEUE_ADDR=127.0.0.1:50051 pnpm --filter @httpqueue/examples start
 *
 * The webhook points at a small receiver this program starts on 127.0.0.1; it
 * checks each delivery's signature with verifyWebhook. Set RECEIVER_URL to
 * send the deliveries somewhere else instead. HTTPQUEUE_TOKEN, when set, is
 * sent as the API token.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  createClient,
  DeliveryStatus,
  deliveryStatusToJSON,
  HttpQueueError,
  verifyWebhook,
  WebhookVerificationError,
  type Delivery,
  type HttpQueueClient,
} from "@httpqueue/sdk";

const NAMESPACE = "example";
const EVENT = "user.signup";

const address = process.env.HTTPQUEUE_ADDR ?? "127.0.0.1:50051";
const client = createClient({ address, token: process.env.HTTPQUEUE_TOKEN });

// The receiver learns the signing secret once the webhook is registered.
let signingSecret = "";

/** A webhook receiver: reads the raw body, verifies it, answers 204 (or 400 when it is not authentic). */
function receive(req: IncomingMessage, res: ServerResponse) {
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    try {
      const payload = verifyWebhook(Buffer.concat(chunks), req.headers, signingSecret);
      console.log(
        `receiver: delivery ${String(req.headers["webhook-id"])} verified, payload ${JSON.stringify(payload)}`,
      );
      res.writeHead(204).end();
    } catch (err) {
      if (!(err instanceof WebhookVerificationError)) throw err;
      console.log(`receiver: rejected a request: ${err.message}`);
      res.writeHead(400).end();
    }
  });
}

/** Polls the event's status until its delivery to `webhookId` is settled, for up to 30 s. */
async function settledDelivery(c: HttpQueueClient, eventId: string, webhookId: string): Promise<Delivery | undefined> {
  const settled = new Set([
    DeliveryStatus.DELIVERY_STATUS_SUCCEEDED,
    DeliveryStatus.DELIVERY_STATUS_FAILED,
    DeliveryStatus.DELIVERY_STATUS_EXPIRED,
    DeliveryStatus.DELIVERY_STATUS_CANCELLED,
  ]);
  let delivery: Delivery | undefined;
  for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
    const { deliveries } = await c.getWebhookStatus({ eventId });
    delivery = deliveries.find((d) => d.webhookId === webhookId);
    if (delivery && settled.has(delivery.status)) return delivery;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return delivery;
}

const receiver = createServer(receive);
await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
const url = process.env.RECEIVER_URL ?? `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhooks`;

try {
  const registered = await client.registerWebhook({
    namespace: NAMESPACE,
    event: EVENT,
    url,
    description: "examples/grpc_client.ts",
  });
  signingSecret = registered.signingSecret;
  const { webhookId } = registered;
  console.log(`registered webhook ${webhookId} (${NAMESPACE}/${EVENT} -> ${url})`);

  try {
    // Any JSON-encodable value; a string is sent as it is.
    const { eventId } = await client.pushEvent({
      namespace: NAMESPACE,
      event: EVENT,
      payload: { userId: 42, email: "ada@example.com", plan: "pro" },
    });
    console.log(`pushed event ${eventId}`);

    const delivery = await settledDelivery(client, eventId, webhookId);
    if (!delivery) throw new Error(`no delivery of event ${eventId} to webhook ${webhookId}`);
    console.log(
      `status: ${deliveryStatusToJSON(delivery.status)} after ${delivery.attemptCount} attempt(s)` +
        (delivery.responseCode ? `, HTTP ${delivery.responseCode}` : "") +
        (delivery.errorMessage ? `, ${delivery.errorMessage}` : ""),
    );
    if (delivery.status !== DeliveryStatus.DELIVERY_STATUS_SUCCEEDED) process.exitCode = 1;
  } finally {
    // Leave nothing behind: the next run registers its own webhook.
    await client.unregisterWebhook({ webhookId });
    console.log(`unregistered webhook ${webhookId}`);
  }
} catch (err) {
  process.exitCode = 1;
  if (!(err instanceof HttpQueueError)) throw err;
  console.error(`httpqueue at ${address}: ${err.message}`);
} finally {
  client.close();
  receiver.close();
}
