import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { eventually, startReceiver, type Receiver } from "@httpqueue/testkit";
import { okJson, startServer, type Server } from "./helpers.js";

interface EventStatusJson {
  deliveries: { webhookId: string; status: string }[];
}

describe("webhookctl: a webhook for an event pattern with a payload filter", () => {
  let server: Server;
  let receiver: Receiver;
  let env: Record<string, string>;

  before(async () => {
    server = await startServer();
    receiver = await startReceiver();
    env = { WEBHOOKCTL_ADDR: server.address };
  });
  after(async () => {
    await server.stop();
    await receiver.close();
  });

  const register = async (event: string, path: string, extra: string[] = []) => {
    const args = ["--namespace", "shop", "--event", event, "--url", `${receiver.url}${path}`, ...extra];
    return (await okJson<{ webhookId: string }>(["webhooks", "register", ...args], { env })).webhookId;
  };

  it("receives the events its pattern names whose payload the filter matches, and only those", async () => {
    const filtered = await register("order.*", "/filtered", ["--filter", '{"plan":"pro","country":["DE","FR"]}']);
    // Every event of the namespace, unfiltered: its delivery shows that an event was fanned out.
    const all = await register("*", "/all");

    const events: [string, Record<string, unknown>][] = [
      ["order.created", { id: 1, plan: "pro", country: "DE", lines: 3 }],
      ["order.paid", { id: 2, plan: "free", country: "DE" }],
      ["order.created", { id: 3, plan: "pro", country: "US" }],
      ["invoice.created", { id: 4, plan: "pro", country: "FR" }],
      ["order", { id: 5, plan: "pro", country: "FR" }],
      ["order.refund.issued", { id: 6, plan: "pro", country: "FR" }],
      ["order.created", { id: 7, country: "DE" }],
    ];
    const reached: number[] = [];
    for (const [event, payload] of events) {
      const { eventId } = await okJson<{ eventId: string }>(
        ["events", "push", "--namespace", "shop", "--event", event, JSON.stringify(payload)],
        { env },
      );
      const { deliveries } = await eventually(async () => {
        const status = await okJson<EventStatusJson>(["status", "--event", eventId], { env });
        const done =
          status.deliveries.some((d) => d.webhookId === all) &&
          status.deliveries.every((d) => d.status === "DELIVERY_STATUS_SUCCEEDED");
        return done ? status : undefined;
      });
      if (deliveries.some((d) => d.webhookId === filtered)) reached.push(payload.id as number);
    }
    assert.deepEqual(reached, [1, 6]);

    const ids = (path: string) =>
      receiver.requests.filter((r) => r.path === path).map((r) => (JSON.parse(r.body) as { id: number }).id);
    assert.deepEqual(ids("/filtered").sort(), [1, 6]);
    assert.deepEqual(
      ids("/all").sort((a, b) => a - b),
      [1, 2, 3, 4, 5, 6, 7],
    );
  });
});
