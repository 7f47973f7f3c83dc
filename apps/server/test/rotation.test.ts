import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync, randomBytes, verify } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { drizzle } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { Webhook as StandardWebhook } from "standardwebhooks";
import { Code, SignatureScheme, type HttpQueueClient } from "@httpqueue/sdk";
import { eventually, startReceiver, type ReceivedRequest, type Receiver } from "@httpqueue/testkit";
import { rejection } from "./helpers/rejection.js";
import { createMigratedDatabase, startTestServer, type TestServer } from "./helpers/server.js";
import { clearExpiredSecrets } from "../src/db/signing-secrets.js";
import * as schema from "../src/db/schema.js";

// Signing-secret rotation: during an overlap each delivery carries a signature
// with the new and the old secret, afterwards only the new one's. Checked with
// verifiers that are not the project's: the standardwebhooks library (v1,
// HMAC-SHA256) and node:crypto (v1a, ed25519 with the whpk_ public key).

const MISSING_ID = "0190a0d4-0000-7000-8000-000000000000";
const DAY = 86_400;

/** The Standard Webhooks headers of a received request. */
function standardHeaders(req: ReceivedRequest, signature = String(req.headers["webhook-signature"])) {
  return {
    "webhook-id": String(req.headers["webhook-id"]),
    "webhook-timestamp": String(req.headers["webhook-timestamp"]),
    "webhook-signature": signature,
  };
}

/** The request's signatures, in header order, as [version, base64]. */
function signatures(req: ReceivedRequest): [string, string][] {
  return String(req.headers["webhook-signature"])
    .split(" ")
    .map((entry) => entry.split(",", 2) as [string, string]);
}

/** Whether the v1 signature `signature` (or any v1 one in the request) verifies with the HMAC secret, per standardwebhooks. */
function hmacVerifies(secret: string, req: ReceivedRequest, signature?: string): boolean {
  try {
    new StandardWebhook(secret).verify(req.body, standardHeaders(req, signature));
    return true;
  } catch {
    return false;
  }
}

/** Whether the v1a signature (base64) verifies with the whpk_ public key, by node:crypto alone. */
function ed25519Verifies(publicKey: string, req: ReceivedRequest, signature: string): boolean {
  assert.ok(publicKey.startsWith("whpk_"), "an ed25519 webhook shows its public key");
  const raw = Buffer.from(publicKey.slice("whpk_".length), "base64");
  const key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") }, format: "jwk" });
  const content = `${String(req.headers["webhook-id"])}.${String(req.headers["webhook-timestamp"])}.${req.body}`;
  return verify(null, Buffer.from(content), key, Buffer.from(signature, "base64"));
}

/** A whsk_ key made with node:crypto (its seed and public key), and its whpk_ public key. */
function ownEd25519Key(): { secret: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const d = Buffer.from(privateKey.export({ format: "jwk" }).d ?? "", "base64url");
  const x = Buffer.from(publicKey.export({ format: "jwk" }).x ?? "", "base64url");
  return { secret: `whsk_${Buffer.concat([d, x]).toString("base64")}`, publicKey: `whpk_${x.toString("base64")}` };
}

describe("signing-secret rotation", () => {
  let server: TestServer;
  let client: HttpQueueClient;
  let receiver: Receiver;
  let sql: postgres.Sql;

  before(async () => {
    server = await startTestServer();
    client = server.client;
    receiver = await startReceiver();
    sql = postgres(server.db.url, { max: 1, onnotice: () => undefined });
  });
  after(async () => {
    await sql.end();
    await receiver.close();
    await server.stop();
  });

  it("HMAC: during the overlap a delivery verifies with either secret, the new one first; after it only with the new one", async () => {
    const ns = "rot-hmac";
    const { webhookId, signingSecret: first } = await client.registerWebhook({
      namespace: ns,
      event: "e",
      url: `${receiver.url}/${ns}`,
    });
    assert.match(first, /^whsec_/);
    assert.deepEqual(await client.getSigningSecret({ webhookId }), {
      signingSecret: first,
      signatureScheme: SignatureScheme.SIGNATURE_SCHEME_HMAC_SHA256,
      previousSigningSecret: "",
      previousSecretExpiresAt: undefined,
    });
    const before = await deliveryOf(ns, 1);
    assert.equal(signatures(before).length, 1);
    assert.ok(hmacVerifies(first, before));

    const rotatedAt = Date.now();
    const rotated = await client.rotateSecret({ webhookId, overlapSeconds: 5 });
    const second = rotated.signingSecret;
    assert.match(second, /^whsec_/);
    assert.notEqual(second, first);
    assert.equal(rotated.signatureScheme, SignatureScheme.SIGNATURE_SCHEME_HMAC_SHA256);
    const end = rotated.previousSecretExpiresAt;
    assert.ok(end, "the old secret stops at a time");
    assert.ok(Math.abs(end.getTime() - (rotatedAt + 5_000)) < 2_000, `it stops 5 s from now: ${end.toISOString()}`);
    assert.deepEqual(await client.getSigningSecret({ webhookId }), {
      signingSecret: second,
      signatureScheme: SignatureScheme.SIGNATURE_SCHEME_HMAC_SHA256,
      previousSigningSecret: first,
      previousSecretExpiresAt: end,
    });
    const { webhook } = await client.getWebhookStatus({ webhookId });
    assert.deepEqual(webhook?.previousSecretExpiresAt, end, "the webhook shows the overlap");

    const during = await deliveryOf(ns, 2);
    assert.ok(during.receivedAt < end.getTime(), "delivered during the overlap (a very slow run fails here)");
    const [newest, older] = signatures(during);
    assert.equal(signatures(during).length, 2, String(during.headers["webhook-signature"]));
    assert.ok(hmacVerifies(second, during), "the new secret verifies it");
    assert.ok(hmacVerifies(first, during), "the old secret verifies it");
    assert.ok(hmacVerifies(second, during, newest?.join(",")), "the new secret's signature comes first");
    assert.ok(hmacVerifies(first, during, older?.join(",")));

    await sleep(end.getTime() - Date.now() + 200);
    const afterwards = await deliveryOf(ns, 3);
    assert.equal(signatures(afterwards).length, 1, String(afterwards.headers["webhook-signature"]));
    assert.ok(hmacVerifies(second, afterwards));
    assert.ok(!hmacVerifies(first, afterwards), "the old secret no longer verifies");
    assert.deepEqual(await client.getSigningSecret({ webhookId }), {
      signingSecret: second,
      signatureScheme: SignatureScheme.SIGNATURE_SCHEME_HMAC_SHA256,
      previousSigningSecret: "",
      previousSecretExpiresAt: undefined,
    });
    assert.equal((await client.getWebhookStatus({ webhookId })).webhook?.previousSecretExpiresAt, undefined);
    // The health sweep removes the expired secret from the row.
    await eventually(async () => {
      const [row] = await sql<{ previous: string | null }[]>`
        select previous_signing_secret as previous from webhook_registrations where id = ${webhookId}`;
      return row?.previous === null ? true : undefined;
    });
  });

  /** Waits for the `count`-th delivery to /`ns` (pushing the event first) and returns its request. */
  async function deliveryOf(ns: string, count: number): Promise<ReceivedRequest> {
    await client.pushEvent({ namespace: ns, event: "e", payload: { count } });
    return eventually(
      () => Promise.resolve(receiver.requests.filter((r) => r.path === `/${ns}`)[count - 1]),
      15_000,
      `delivery ${count} to /${ns}`,
    );
  }

  it("ed25519: the receiver gets the whpk_ public key, v1a signatures verify with node:crypto, rotation overlaps the same way", async () => {
    const ns = "rot-ed";
    const registered = await client.registerWebhook({
      namespace: ns,
      event: "e",
      url: `${receiver.url}/${ns}`,
      signatureScheme: SignatureScheme.SIGNATURE_SCHEME_ED25519,
    });
    const { webhookId } = registered;
    const first = registered.signingSecret;
    assert.match(first, /^whpk_/);
    assert.equal(registered.webhook?.signatureScheme, SignatureScheme.SIGNATURE_SCHEME_ED25519);
    assert.equal((await client.getSigningSecret({ webhookId })).signingSecret, first);

    const one = await deliveryOf(ns, 1);
    const [[version, signature] = ["", ""], ...rest] = signatures(one);
    assert.equal(version, "v1a");
    assert.equal(rest.length, 0);
    assert.ok(ed25519Verifies(first, one, signature));
    assert.ok(!hmacVerifies(`whsec_${randomBytes(32).toString("base64")}`, one), "no v1 signature to match");

    const rotated = await client.rotateSecret({ webhookId, overlapSeconds: 4 });
    const second = rotated.signingSecret;
    assert.match(second, /^whpk_/);
    assert.equal(rotated.signatureScheme, SignatureScheme.SIGNATURE_SCHEME_ED25519);
    const end = rotated.previousSecretExpiresAt;
    assert.ok(end);
    const got = await client.getSigningSecret({ webhookId });
    assert.deepEqual([got.signingSecret, got.previousSigningSecret], [second, first]);

    const two = await deliveryOf(ns, 2);
    assert.ok(two.receivedAt < end.getTime(), "delivered during the overlap (a very slow run fails here)");
    const during = signatures(two);
    assert.deepEqual(
      during.map(([v]) => v),
      ["v1a", "v1a"],
    );
    assert.ok(ed25519Verifies(second, two, during[0]?.[1] ?? ""), "the new key's signature comes first");
    assert.ok(ed25519Verifies(first, two, during[1]?.[1] ?? ""));
    assert.ok(!ed25519Verifies(first, two, during[0]?.[1] ?? ""));

    await sleep(end.getTime() - Date.now() + 200);
    const three = await deliveryOf(ns, 3);
    const afterwards = signatures(three);
    assert.equal(afterwards.length, 1);
    assert.ok(ed25519Verifies(second, three, afterwards[0]?.[1] ?? ""));
    assert.ok(!ed25519Verifies(first, three, afterwards[0]?.[1] ?? ""));

    // A key the caller brings: its public key comes back, and signs.
    const own = ownEd25519Key();
    const mine = await client.rotateSecret({ webhookId, secret: own.secret, overlapSeconds: 0 });
    assert.equal(mine.signingSecret, own.publicKey);
    assert.equal(mine.previousSecretExpiresAt, undefined, "overlap 0: the old key stops at once");
    const four = await deliveryOf(ns, 4);
    assert.equal(signatures(four).length, 1);
    assert.ok(ed25519Verifies(own.publicKey, four, signatures(four)[0]?.[1] ?? ""));

    // The private key never leaves the server: not through any RPC that shows a webhook or its keys.
    const { deliveries } = await client.getWebhookStatus({ webhookId });
    const shown = JSON.stringify([
      registered,
      rotated,
      mine,
      await client.getSigningSecret({ webhookId }),
      await client.listWebhooks({}),
      await client.getWebhookStatus({ webhookId }),
      await client.updateWebhook({ webhookId, description: "x" }),
      ...(await Promise.all(deliveries.map((d) => client.listAttempts({ deliveryId: d.id })))),
    ]);
    assert.ok(shown.includes("v1a,"), "the attempts were among what was read");
    assert.ok(!shown.includes("whsk_"), "no private key in any answer");
    const [stored] = await sql<{ secret: string }[]>`
      select signing_secret as secret from webhook_registrations where id = ${webhookId}`;
    assert.ok(stored && !shown.includes(stored.secret.slice(5, 40)), "nor the stored form's key bytes");
  });

  it("a new scheme through UpdateWebhook rotates in a key of it, the old one signing too for 24 hours", async () => {
    const ns = "rot-switch";
    const { webhookId, signingSecret: hmac } = await client.registerWebhook({
      namespace: ns,
      event: "e",
      url: `${receiver.url}/${ns}`,
    });
    const same = await client.updateWebhook({
      webhookId,
      signatureScheme: SignatureScheme.SIGNATURE_SCHEME_HMAC_SHA256,
    });
    assert.equal(same.signingSecret, "", "the scheme it has already: nothing new");
    assert.equal(same.previousSecretExpiresAt, undefined);
    assert.equal((await client.getSigningSecret({ webhookId })).signingSecret, hmac);

    const at = Date.now();
    const switched = await client.updateWebhook({
      webhookId,
      signatureScheme: SignatureScheme.SIGNATURE_SCHEME_ED25519,
    });
    assert.match(switched.signingSecret, /^whpk_/);
    assert.equal(switched.webhook?.signatureScheme, SignatureScheme.SIGNATURE_SCHEME_ED25519);
    const end = switched.previousSecretExpiresAt?.getTime() ?? 0;
    assert.ok(Math.abs(end - (at + DAY * 1000)) < 5_000, "the default overlap, 24 hours");
    assert.deepEqual(switched.webhook.previousSecretExpiresAt, switched.previousSecretExpiresAt);
    const got = await client.getSigningSecret({ webhookId });
    assert.deepEqual(
      [got.signingSecret, got.signatureScheme, got.previousSigningSecret],
      [switched.signingSecret, SignatureScheme.SIGNATURE_SCHEME_ED25519, hmac],
    );

    // One signature of each kind: a receiver on either verifier accepts it.
    const req = await deliveryOf(ns, 1);
    const sigs = signatures(req);
    assert.deepEqual(
      sigs.map(([v]) => v),
      ["v1a", "v1"],
    );
    assert.ok(ed25519Verifies(switched.signingSecret, req, sigs[0]?.[1] ?? ""));
    assert.ok(hmacVerifies(hmac, req));

    // Back to HMAC: a new whsec_, the ed25519 key now the previous one.
    const back = await client.updateWebhook({
      webhookId,
      signatureScheme: SignatureScheme.SIGNATURE_SCHEME_HMAC_SHA256,
    });
    assert.match(back.signingSecret, /^whsec_/);
    assert.notEqual(back.signingSecret, hmac);
    const now = await client.getSigningSecret({ webhookId });
    assert.deepEqual([now.signingSecret, now.previousSigningSecret], [back.signingSecret, switched.signingSecret]);
  });

  it("a secret the caller brings signs the deliveries; with overlap 0 the old one stops at once", async () => {
    const ns = "rot-own";
    const { webhookId, signingSecret: first } = await client.registerWebhook({
      namespace: ns,
      event: "e",
      url: `${receiver.url}/${ns}`,
    });
    const own = `whsec_${randomBytes(24).toString("base64")}`;
    const res = await client.rotateSecret({ webhookId, secret: own, overlapSeconds: 0 });
    assert.equal(res.signingSecret, own);
    assert.equal(res.previousSecretExpiresAt, undefined);
    assert.deepEqual(await client.getSigningSecret({ webhookId }), {
      signingSecret: own,
      signatureScheme: SignatureScheme.SIGNATURE_SCHEME_HMAC_SHA256,
      previousSigningSecret: "",
      previousSecretExpiresAt: undefined,
    });
    const req = await deliveryOf(ns, 1);
    assert.equal(signatures(req).length, 1);
    assert.ok(hmacVerifies(own, req));
    assert.ok(!hmacVerifies(first, req));

    // Unset overlap: 24 hours.
    const at = Date.now();
    const later = await client.rotateSecret({ webhookId });
    assert.ok(Math.abs((later.previousSecretExpiresAt?.getTime() ?? 0) - (at + DAY * 1000)) < 5_000);
    assert.equal((await client.getSigningSecret({ webhookId })).previousSigningSecret, own);
  });

  it("refuses bad overlaps and secrets naming the field, without repeating the secret", async () => {
    const { webhookId } = await client.registerWebhook({ namespace: "rot-bad", event: "e", url: `${receiver.url}/x` });
    for (const overlapSeconds of [-1, 7 * DAY + 1]) {
      const err = await rejection(client.rotateSecret({ webhookId, overlapSeconds }));
      assert.equal(err.code, Code.INVALID_ARGUMENT);
      assert.match(err.details, /^overlap_seconds: must be 0 .* to 604800 seconds \(7 days\)/);
    }
    assert.ok((await client.rotateSecret({ webhookId, overlapSeconds: 7 * DAY })).previousSecretExpiresAt);
    const unchanged = await client.getSigningSecret({ webhookId });

    const short = randomBytes(16).toString("base64");
    const long = randomBytes(65).toString("base64");
    const ed = ownEd25519Key();
    const bad = [
      `whsec_${short}`,
      `whsec_${long}`,
      `whsec_${short}!!`,
      "correct-horse-battery-staple-secret",
      ed.publicKey,
      ed.secret, // an ed25519 key for an HMAC webhook
    ];
    for (const secret of bad) {
      const err = await rejection(client.rotateSecret({ webhookId, secret }));
      assert.equal(err.code, Code.INVALID_ARGUMENT, `${secret.slice(0, 8)}: ${err.details}`);
      assert.match(err.details, /^secret: /);
      const body = secret.replace(/^wh(sec|sk|pk)_/, "");
      assert.ok(!err.details.includes(body.slice(0, 12)), `the message repeats the secret: ${err.details}`);
    }
    const mismatch = await rejection(client.rotateSecret({ webhookId, secret: ed.secret }));
    assert.match(mismatch.details, /^secret: is an ed25519 secret, and webhook .* signs with hmac-sha256/);
    assert.deepEqual(await client.getSigningSecret({ webhookId }), unchanged, "none of them changed anything");

    const scheme = await rejection(
      client.registerWebhook({
        namespace: "rot-bad",
        event: "e",
        url: `${receiver.url}/x`,
        signatureScheme: 7 as unknown as SignatureScheme,
      }),
    );
    assert.equal(scheme.code, Code.INVALID_ARGUMENT);
    assert.match(scheme.details, /^signature_scheme: /);
    const update = await rejection(
      client.updateWebhook({ webhookId, signatureScheme: -2 as unknown as SignatureScheme }),
    );
    assert.match(update.details, /^signature_scheme: /);
  });

  it("NOT_FOUND for an unknown or unregistered webhook", async () => {
    const { webhookId } = await client.registerWebhook({ namespace: "rot-gone", event: "e", url: `${receiver.url}/x` });
    await client.unregisterWebhook({ webhookId });
    for (const id of [MISSING_ID, webhookId]) {
      for (const call of [
        () => client.rotateSecret({ webhookId: id }),
        () => client.rotateSecret({ webhookId: id, secret: `whsec_${randomBytes(32).toString("base64")}` }),
        () => client.getSigningSecret({ webhookId: id }),
      ]) {
        const err = await rejection(call());
        assert.equal(err.code, Code.NOT_FOUND);
        assert.equal(err.details, `webhook ${id} not found`);
      }
    }
    const err = await rejection(client.getSigningSecret({ webhookId: "nope" }));
    assert.match(err.details, /^webhook_id: /);
  });

  it("concurrent rotations end in a consistent pair: the last one's secret and the one before it", async () => {
    const { webhookId, signingSecret: original } = await client.registerWebhook({
      namespace: "rot-race",
      event: "e",
      url: `${receiver.url}/x`,
    });
    const results = await Promise.all(
      Array.from({ length: 8 }, () => client.rotateSecret({ webhookId, overlapSeconds: 600 })),
    );
    const issued = results.map((r) => r.signingSecret);
    assert.equal(new Set(issued).size, 8);
    const { signingSecret, previousSigningSecret } = await client.getSigningSecret({ webhookId });
    assert.ok(issued.includes(signingSecret), "the current secret is one that a rotation returned");
    assert.ok(issued.includes(previousSigningSecret), "so is the previous one");
    assert.notEqual(signingSecret, previousSigningSecret);
    assert.notEqual(previousSigningSecret, original, "each rotation saw the one before it");
  });
});

describe("clearing previous secrets whose overlap ended", () => {
  // Every server runs it at each health sweep: among many webhooks, it reads
  // only those in an overlap (webhook_registrations_previous_secret_idx).
  it("wipes the expired ones only, through the partial index rather than a scan of every webhook", async () => {
    const db = await createMigratedDatabase();
    const statements: { text: string; params: unknown[] }[] = [];
    const client = postgres(db.url, {
      max: 1,
      onnotice: () => undefined,
      debug: (_connection, text, params) => statements.push({ text, params }),
    });
    try {
      await db.sql`
        insert into webhook_registrations (namespace, event, url, signing_secret, previous_signing_secret, previous_secret_expires_at)
        select 'many', 'e', 'https://example.com/' || i, 'whsec_' || md5(i::text),
          case when i % 1000 = 0 then 'whsec_old' || i end,
          case when i % 2000 = 0 then now() - interval '1 minute' when i % 1000 = 0 then now() + interval '1 hour' end
        from generate_series(1, 20000) i`;
      await db.sql`analyze webhook_registrations`;

      assert.equal(await clearExpiredSecrets(drizzle(client, { schema })), 10);
      const [left] = await db.sql<{ previous: number; running: number }[]>`
        select count(previous_signing_secret)::int as previous, count(*) filter (where previous_secret_expires_at > now())::int as running
        from webhook_registrations`;
      assert.deepEqual(left, { previous: 10, running: 10 }, "the ten still in their overlap are kept");

      const clear = statements.find((s) => s.text.startsWith("update"));
      assert.ok(clear, "the statement was seen");
      const [{ "QUERY PLAN": plan }] = (await db.sql.unsafe(
        `explain (format json) ${clear.text}`,
        clear.params as never[],
      )) as [{ "QUERY PLAN": unknown }];
      const text = JSON.stringify(plan);
      assert.match(text, /"Index Name":"webhook_registrations_previous_secret_idx"/, text);
      assert.doesNotMatch(text, /Seq Scan/, text);
    } finally {
      await client.end({ timeout: 5 });
      await db.drop();
    }
  });
});
