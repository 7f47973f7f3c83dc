import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { DeliveryStatus } from "@httpqueue/sdk";
import { startReceiver, type Receiver } from "@httpqueue/testkit";
import { parseCidr, type DestinationPolicy } from "../src/addresses.js";
import { blockedReason } from "../src/delivery/destinations.js";
import { startTestServer, waitForDelivery, type TestServer } from "./helpers/server.js";

const DEFAULT: DestinationPolicy = { allowPrivate: false, allowlist: [] };

describe("address classification (no network)", () => {
  const blocked: [string, RegExp][] = [
    ["127.0.0.1", /loopback/],
    ["127.255.255.254", /loopback/],
    ["::1", /loopback/],
    ["10.0.0.1", /private/],
    ["172.16.5.4", /private/],
    ["172.31.255.255", /private/],
    ["192.168.1.1", /private/],
    ["169.254.169.254", /link-local/],
    ["fe80::1", /link-local/],
    ["100.64.0.1", /carrier-grade NAT/],
    ["fc00::1", /unique local/],
    ["fd12:3456::1", /unique local/],
    ["0.0.0.0", /unspecified/],
    ["::", /unspecified/],
    ["224.0.0.1", /multicast/],
    ["ff02::1", /multicast/],
    ["255.255.255.255", /broadcast/],
    ["240.0.0.1", /reserved/],
    ["192.0.2.1", /reserved/], // TEST-NET-1
    // Other spellings of internal addresses.
    ["::ffff:127.0.0.1", /loopback/],
    ["::ffff:7f00:1", /loopback/],
    ["[::ffff:10.0.0.1]", /private/],
    ["::ffff:169.254.169.254", /link-local/],
    ["64:ff9b::7f00:1", /special-purpose/], // NAT64 of 127.0.0.1
    ["2002:7f00:1::", /special-purpose/], // 6to4 of 127.0.0.1
  ];
  for (const [address, reason] of blocked) {
    it(`refuses ${address}`, () => {
      assert.match(blockedReason(DEFAULT, address) ?? "allowed", reason);
    });
  }

  for (const address of ["93.184.215.14", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001::200e"]) {
    it(`allows the public address ${address}`, () => {
      assert.equal(blockedReason(DEFAULT, address), undefined);
    });
  }

  it("DESTINATION_ALLOWLIST allows chosen networks only", () => {
    const policy: DestinationPolicy = {
      allowPrivate: false,
      allowlist: ["10.1.0.0/16", "127.0.0.2", "fd00::/8"].map(parseCidr),
    };
    assert.equal(blockedReason(policy, "10.1.2.3"), undefined);
    assert.equal(blockedReason(policy, "127.0.0.2"), undefined);
    assert.equal(blockedReason(policy, "::ffff:127.0.0.2"), undefined, "as IPv4-mapped too");
    assert.equal(blockedReason(policy, "fd00::5"), undefined);
    assert.match(blockedReason(policy, "10.2.0.1") ?? "", /private/);
    assert.match(blockedReason(policy, "127.0.0.1") ?? "", /loopback/);
  });

  it("ALLOW_PRIVATE_DESTINATIONS allows everything", () => {
    const policy: DestinationPolicy = { allowPrivate: true, allowlist: [] };
    for (const address of ["127.0.0.1", "169.254.169.254", "fc00::1"])
      assert.equal(blockedReason(policy, address), undefined);
  });
});

describe("the destination guard on real deliveries (loopback only)", () => {
  let server: TestServer;
  let v4: Receiver;
  let alias: Receiver;
  let v6: Receiver | undefined;

  before(async () => {
    // The guard as shipped (FAST_ENV allows private destinations for the other tests), with one chosen address.
    server = await startTestServer({ ALLOW_PRIVATE_DESTINATIONS: "false", DESTINATION_ALLOWLIST: "127.0.0.2/32" });
    v4 = await startReceiver();
    alias = await startReceiver(() => 200, "127.0.0.2");
    v6 = await startReceiver(() => 200, "::1").catch(() => undefined); // where IPv6 loopback exists
  });
  after(async () => {
    await server.stop();
    for (const r of [v4, alias, v6]) await r?.close();
  });

  const blockedUrls = (): [string, Receiver | undefined, RegExp][] => [
    [`http://127.0.0.1:${v4.port}/`, v4, /127\.0\.0\.1 is a loopback address/],
    [`http://localhost:${v4.port}/`, v4, /\(the address of localhost\) is a loopback address/],
    [`http://0x7f000001:${v4.port}/`, v4, /127\.0\.0\.1 is a loopback address/],
    [`http://2130706433:${v4.port}/`, v4, /127\.0\.0\.1 is a loopback address/],
    [`http://127.1:${v4.port}/`, v4, /127\.0\.0\.1 is a loopback address/],
    [`http://[::ffff:127.0.0.1]:${v4.port}/`, v4, /is a loopback address/],
    [`http://[::1]:${v6?.port ?? v4.port}/`, v6, /::1 is a loopback address/],
  ];

  it("refuses loopback in every spelling, fails the delivery at once, and nothing arrives", async () => {
    for (const [url, receiver, reason] of blockedUrls()) {
      const event = `e${Math.random().toString(36).slice(2, 8)}`;
      const registered = await server.client.registerWebhook({ namespace: "ssrf", event, url });
      assert.equal(registered.warnings.length, 1, `${url}: registration warns`);
      assert.match(registered.warnings[0] ?? "", /would be refused now/);

      const { eventId } = await server.client.pushEvent({ namespace: "ssrf", event, payload: "{}" });
      const delivery = await waitForDelivery(server.client, eventId, "final");
      assert.equal(delivery.status, DeliveryStatus.DELIVERY_STATUS_FAILED, url);
      assert.equal(delivery.attemptCount, 1, `${url}: not retried`);
      assert.equal(delivery.responseCode, 0);
      assert.match(delivery.errorMessage, reason, url);
      assert.match(delivery.errorMessage, /DESTINATION_ALLOWLIST=.*ALLOW_PRIVATE_DESTINATIONS=true/, url);
      if (receiver) assert.equal(receiver.requests.length, 0, `${url}: nothing reached the receiver`);
    }
  });

  it("delivers to an address on DESTINATION_ALLOWLIST, and only there", async () => {
    const registered = await server.client.registerWebhook({ namespace: "ssrf", event: "allowed", url: alias.url });
    assert.deepEqual(registered.warnings, []);
    const { eventId } = await server.client.pushEvent({ namespace: "ssrf", event: "allowed", payload: '{"ok":1}' });
    await waitForDelivery(server.client, eventId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
    assert.equal(alias.requests[0]?.body, '{"ok":1}');
    assert.equal(v4.requests.length, 0);
  });

  it("connects to the checked address but keeps the URL's host name in the request", async () => {
    // localhost resolves to loopback; allowed here only because the address is on the list.
    const allowing = await startTestServer({
      ALLOW_PRIVATE_DESTINATIONS: "false",
      DESTINATION_ALLOWLIST: "127.0.0.0/8,::1/128",
    });
    try {
      await allowing.client.registerWebhook({
        namespace: "ssrf",
        event: "named",
        url: `http://localhost:${v4.port}/hook`,
      });
      const { eventId } = await allowing.client.pushEvent({ namespace: "ssrf", event: "named", payload: "{}" });
      await waitForDelivery(allowing.client, eventId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
      assert.equal(v4.requests.at(-1)?.headers.host, `localhost:${v4.port}`);
    } finally {
      await allowing.stop();
    }
  });
});
