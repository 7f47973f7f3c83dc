import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { DeliveryStatus, SignatureScheme, verifyWebhook, type HttpQueueClient } from "@httpqueue/sdk";
import { eventually, startReceiver, type Receiver, type TestDatabase } from "@httpqueue/testkit";
import postgres from "postgres";
import { ConfigError, loadConfig } from "../src/config.js";
import {
  createSecretCipher,
  plaintextSecrets,
  SEALED_PREFIX,
  SecretUnavailableError,
  sealedKeyId,
} from "../src/secrets/cipher.js";
import { KeyRing, keyId } from "../src/secrets/keys.js";
import { createLogger } from "../src/observability/logger.js";
import { rekey } from "../src/secrets/rekey.js";
import { resealPass } from "../src/secrets/reseal.js";
import { prepareSecrets } from "../src/secrets/start.js";
import {
  createMigratedDatabase,
  FAST_ENV,
  MAIN,
  runServerToExit,
  startTestServer,
  waitForDelivery,
} from "./helpers/server.js";
import { rejection } from "./helpers/rejection.js";

const newKey = () => randomBytes(32);
const keyEnv = (...keys: Buffer[]) => ({ SECRETS_KEY: keys.map((k) => k.toString("base64")).join(",") });
const cipherOf = (...keys: Buffer[]) => createSecretCipher(new KeyRing(keys));

/** What must never be found in the database, a log line or a response once a server has `key`. */
function forbidden(key: Buffer): Record<string, string> {
  return {
    "a plain HMAC secret": "whsec_",
    "a plain ed25519 key": "whsk_",
    "the key in base64": key.toString("base64"),
    "the key in base64url": key.toString("base64url"),
    "the key in hex": key.toString("hex"),
  };
}

/**
 * Every row of every table of the database (ours and graphile-worker's) that
 * has a text, JSON or bytea column, cast to text and searched for each needle.
 */
async function findInDatabase(sql: postgres.Sql, needles: Record<string, string>): Promise<string[]> {
  const tables = await sql<{ schema: string; name: string }[]>`
    select distinct c.table_schema as schema, c.table_name as name
    from information_schema.columns c
    join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name
    where t.table_type = 'BASE TABLE' and c.table_schema not in ('pg_catalog', 'information_schema')
      and c.data_type in ('text', 'character varying', 'character', 'json', 'jsonb', 'bytea', 'ARRAY')
    order by 1, 2`;
  const names = tables.map((t) => `${t.schema}.${t.name}`);
  for (const expected of [
    "public.webhook_registrations",
    "public.delivery_attempts",
    "graphile_worker._private_jobs",
  ]) {
    assert.ok(names.includes(expected), `the scan covers ${expected} (it covers ${names.join(", ")})`);
  }
  const hits: string[] = [];
  for (const { schema, name } of tables) {
    for (const [label, needle] of Object.entries(needles)) {
      const [row] = await sql<{ n: number }[]>`
        select count(*)::int as n from ${sql(schema)}.${sql(name)} t where strpos(t::text, ${needle}) > 0`;
      if ((row?.n ?? 0) > 0) hits.push(`${schema}.${name}: ${label} in ${row?.n} rows`);
    }
  }
  return hits;
}

/** The stored secrets of every webhook, by id. */
async function storedSecrets(sql: postgres.Sql) {
  const rows = await sql<{ id: string; current: string; previous: string | null }[]>`
    select id, signing_secret as current, previous_signing_secret as previous from webhook_registrations order by id`;
  return rows;
}

/** Pushes an event to `namespace`/`event` and checks its delivery to `receiver` verifies with `secret`. */
async function deliversVerified(
  client: HttpQueueClient,
  receiver: Receiver,
  target: { namespace: string; event: string; secret: string },
): Promise<void> {
  const payload = { n: randomBytes(4).toString("hex") };
  const { eventId } = await client.pushEvent({ namespace: target.namespace, event: target.event, payload });
  const delivery = await waitForDelivery(client, eventId, DeliveryStatus.DELIVERY_STATUS_SUCCEEDED);
  const request = receiver.requests.find((r) => r.headers["webhook-id"] === delivery.id);
  assert.ok(request, "the receiver got the delivery");
  assert.deepEqual(verifyWebhook(request.body, request.headers, target.secret), payload);
}

/** `node dist/main.js rekey` with `env` (and PATH alone from ours). */
function runRekey(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, "rekey"], {
      env: { PATH: process.env.PATH, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      resolve({ code, output });
    });
  });
}

describe("the sealed form", () => {
  const k1 = newKey();
  const k2 = newKey();

  it("opens to the secret, names its key by id, and differs at every seal (random IV)", () => {
    const cipher = cipherOf(k1);
    const secret = `whsec_${randomBytes(32).toString("base64")}`;
    const a = cipher.seal(secret);
    const b = cipher.seal(secret);
    assert.notEqual(a, b);
    assert.ok(a.startsWith(`${SEALED_PREFIX}${keyId(k1)}:`));
    assert.equal(sealedKeyId(a), keyId(k1));
    assert.ok(!a.includes(k1.toString("base64")) && !a.includes(secret.slice(6)));
    assert.equal(cipher.open(a), secret);
    assert.equal(cipher.open(b), secret);
    assert.equal(cipher.open(secret), secret, "a plain secret (a server without SECRETS_KEY wrote it) opens as is");
    assert.equal(cipher.seal(""), "", "an unregistered webhook's empty secret stays empty");
    assert.equal(cipher.open(""), "");
  });

  it("opens with any key of the ring, seals with the first", () => {
    const old = cipherOf(k1).seal("whsk_private");
    const both = cipherOf(k2, k1);
    assert.equal(both.open(old), "whsk_private");
    assert.equal(sealedKeyId(both.seal("whsk_private")), keyId(k2));
  });

  it("refuses a form no key opens, a damaged one, one whose key id was edited, and a plain server's open of a sealed one", () => {
    const sealed = cipherOf(k1).seal("whsec_AAAA");
    assert.throws(
      () => cipherOf(k2).open(sealed),
      (err: unknown) => {
        assert.ok(err instanceof SecretUnavailableError);
        assert.match(err.message, new RegExp(`sealed with key ${keyId(k1)}, which SECRETS_KEY does not hold`));
        return true;
      },
    );
    const body = sealed.slice(sealed.lastIndexOf(":") + 1);
    const flipped = Buffer.from(body, "base64url");
    flipped[flipped.length - 20] = (flipped[flipped.length - 20] ?? 0) ^ 1;
    const damaged = sealed.slice(0, sealed.lastIndexOf(":") + 1) + flipped.toString("base64url");
    assert.throws(() => cipherOf(k1).open(damaged), /does not authenticate/);
    // The key id is bound to the ciphertext: a form relabelled with another key of the ring does not open.
    const relabelled = sealed.replace(keyId(k1), keyId(k2));
    assert.throws(() => cipherOf(k1, k2).open(relabelled), /does not authenticate/);
    assert.throws(() => cipherOf(k1).open(`${SEALED_PREFIX}${keyId(k1)}:AAAA`), /truncated/);
    assert.throws(() => cipherOf(k1).open("something else"), SecretUnavailableError);
    assert.throws(() => plaintextSecrets.open(sealed), /SECRETS_KEY is not set/);
  });

  it("keeps the keys out of logs and JSON: a KeyRing shows its ids", () => {
    const ring = new KeyRing([k1, k2]);
    assert.equal(JSON.stringify({ ring }), JSON.stringify({ ring: { ids: [keyId(k1), keyId(k2)] } }));
    assert.ok(!JSON.stringify(loadConfig({ ...keyEnv(k1) })).includes(k1.toString("base64")));
  });
});

describe("SECRETS_KEY settings", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "httpqueue-keys-"));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("takes base64 keys, comma-separated, or a file of them; the first seals", () => {
    const k1 = newKey();
    const k2 = newKey();
    assert.deepEqual(loadConfig(keyEnv(k2, k1)).secretsKeys?.ids, [keyId(k2), keyId(k1)]);
    assert.equal(loadConfig({ SECRETS_KEY: k1.toString("base64url") }).secretsKeys?.current.id, keyId(k1));
    assert.equal(loadConfig({}).secretsKeys, undefined);
    const file = join(dir, "keys");
    writeFileSync(file, `# the new key first\n${k2.toString("base64")}\n\n${k1.toString("base64")}\n`);
    assert.deepEqual(loadConfig({ SECRETS_KEY_FILE: file }).secretsKeys?.ids, [keyId(k2), keyId(k1)]);
  });

  it("refuses a short, long or non-base64 key naming the variable and the entry, never the key", () => {
    const good = newKey().toString("base64");
    const short = randomBytes(16).toString("base64");
    const cases: [string, RegExp][] = [
      [short, /SECRETS_KEY the key must decode to 32 bytes, not 16/],
      [randomBytes(48).toString("base64"), /SECRETS_KEY the key must decode to 32 bytes, not 48/],
      [`${good},not*base64`, /SECRETS_KEY key #2 is not base64/],
      [" , ", /SECRETS_KEY holds no key/],
    ];
    for (const [value, message] of cases) {
      assert.throws(
        () => loadConfig({ SECRETS_KEY: value }),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          assert.match(err.message, message);
          assert.ok(!err.message.includes(good) && !err.message.includes(short), "no key is echoed");
          return true;
        },
      );
    }
    const file = join(dir, "bad");
    writeFileSync(file, `${good}\n${short}\n`);
    assert.throws(() => loadConfig({ SECRETS_KEY_FILE: file }), /SECRETS_KEY_FILE key #2 must decode to 32 bytes/);
    assert.throws(() => loadConfig({ SECRETS_KEY_FILE: join(dir, "missing") }), /SECRETS_KEY_FILE cannot be read/);
    assert.throws(() => loadConfig({ SECRETS_KEY: good, SECRETS_KEY_FILE: file }), /set one of them, not both/);
  });

  it("a wrong or short key stops the server at start with a message naming the variable", async () => {
    const db = await createMigratedDatabase();
    try {
      const short = randomBytes(16).toString("base64");
      const { code, output } = await runServerToExit({ ...FAST_ENV, DATABASE_URL: db.url, SECRETS_KEY: short });
      assert.equal(code, 2);
      assert.match(output, /SECRETS_KEY the key must decode to 32 bytes, not 16/);
      assert.ok(!output.includes(short));
      const wrong = await runServerToExit({ ...FAST_ENV, DATABASE_URL: db.url, SECRETS_KEY: "correct-horse-battery!" });
      assert.equal(wrong.code, 2);
      assert.match(wrong.output, /SECRETS_KEY the key is not base64/);
      assert.ok(!wrong.output.includes("correct-horse"));
    } finally {
      await db.drop();
    }
  });
});

describe("a server with SECRETS_KEY", () => {
  const key = newKey();
  let db: TestDatabase;
  let receiver: Receiver;
  const logs: string[] = [];

  before(async () => {
    db = await createMigratedDatabase();
    receiver = await startReceiver();
  });
  after(async () => {
    await receiver.close();
    await db.drop();
  });

  it("stores no secret nor key anywhere in the database, logs, metrics or ListWebhooks; its deliveries verify", async () => {
    const server = await startTestServer({ ...keyEnv(key), LOG_LEVEL: "debug" }, db, {
      write: (line) => logs.push(line),
    });
    try {
      const { client } = server;
      const registered: { namespace: string; event: string; secret: string; id: string }[] = [];
      for (const event of ["a", "b", "ed"]) {
        const r = await client.registerWebhook({
          namespace: "sealed",
          event,
          url: `${receiver.url}/${event}`,
          ...(event === "ed" ? { signatureScheme: SignatureScheme.SIGNATURE_SCHEME_ED25519 } : {}),
        });
        // What the receiver verifies with: the HMAC secret, or the ed25519 public key (its private key stays stored).
        assert.match(r.signingSecret, event === "ed" ? /^whpk_/ : /^whsec_/);
        registered.push({ namespace: "sealed", event, secret: r.signingSecret, id: r.webhookId });
      }
      // A rotation keeps the old secret beside the new one for the overlap: both stored, both sealed, both sign.
      const [a] = registered;
      assert.ok(a);
      const rotated = await client.rotateSecret({ webhookId: a.id, overlapSeconds: 3600 });
      registered.push({ ...a, secret: rotated.signingSecret });
      for (const target of registered) await deliversVerified(client, receiver, target);

      assert.deepEqual(await findInDatabase(db.sql, forbidden(key)), []);
      const stored = await storedSecrets(db.sql);
      const opened = (form: string | null) => (form === null ? null : cipherOf(key).open(form));
      for (const row of stored) {
        assert.equal(sealedKeyId(row.current), keyId(key));
        assert.match(opened(row.current) ?? "", /^(whsec_|whsk_)/);
      }
      const rotatedRow = stored.find((row) => row.id === a.id);
      assert.deepEqual(
        [opened(rotatedRow?.current ?? ""), opened(rotatedRow?.previous ?? null)],
        [rotated.signingSecret, a.secret],
      );
      const listed = JSON.stringify(await client.listWebhooks({ namespace: "sealed" }));
      assert.ok(listed.includes(`${receiver.url}/a`), "the listing holds the webhooks");
      const metrics = await (await fetch(`http://${server.app.httpAddress}/metrics`)).text();
      assert.match(metrics, /httpqueue_/);
      const text = { ListWebhooks: listed, logs: logs.join(""), metrics };
      assert.ok(
        logs.some((l) => l.includes("delivery attempt")),
        "the logs were captured",
      );
      const plain = [...registered.map((r) => r.secret), ...stored.map((row) => opened(row.current) ?? "")];
      for (const [where, body] of Object.entries(text)) {
        for (const [label, needle] of Object.entries({ ...forbidden(key), "a sealed form": SEALED_PREFIX })) {
          assert.ok(!body.includes(needle), `${label} in ${where}`);
        }
        for (const secret of plain)
          assert.ok(!body.includes(secret.slice(secret.indexOf("_") + 1)), `a secret in ${where}`);
      }
    } finally {
      await server.stop();
    }
  });

  it("a secret no key of the server opens fails its delivery with a message saying so, sends nothing unsigned, and others deliver", async () => {
    const server = await startTestServer(keyEnv(key), db);
    const stranger = await startReceiver();
    try {
      const { client } = server;
      const broken = await client.registerWebhook({ namespace: "unopened", event: "e", url: stranger.url });
      const fine = await client.registerWebhook({ namespace: "unopened", event: "e", url: `${receiver.url}/fine` });
      const sealedElsewhere = cipherOf(newKey()).seal(`whsec_${randomBytes(32).toString("base64")}`);
      await db.sql`update webhook_registrations set signing_secret = ${sealedElsewhere} where id = ${broken.webhookId}`;

      const { eventId } = await client.pushEvent({ namespace: "unopened", event: "e", payload: { x: 1 } });
      const byWebhook = async (webhookId: string) => {
        const { deliveries } = await client.getWebhookStatus({ identifier: { $case: "webhookId", value: webhookId } });
        return deliveries.find((d) => d.eventId === eventId);
      };
      await eventually(
        async () => (await byWebhook(fine.webhookId))?.status === DeliveryStatus.DELIVERY_STATUS_SUCCEEDED || undefined,
        15_000,
        "the other webhook's delivery succeeds",
      );
      const failed = await eventually(
        async () => {
          const d = await byWebhook(broken.webhookId);
          return d !== undefined && d.attemptCount >= 2 ? d : undefined;
        },
        15_000,
        "attempts of the delivery whose secret cannot be opened",
      );
      assert.equal(
        failed.status,
        DeliveryStatus.DELIVERY_STATUS_RETRYING,
        "retried on schedule: a key may be added back",
      );
      assert.match(
        failed.errorMessage,
        new RegExp(
          `signing secret cannot be opened: it is sealed with key ${sealedKeyId(sealedElsewhere)}, which SECRETS_KEY does not hold`,
        ),
      );
      assert.equal(stranger.requests.length, 0, "nothing was sent unsigned");
      assert.ok(!failed.errorMessage.includes(sealedElsewhere));
      const refused = await rejection(client.getSigningSecret({ webhookId: broken.webhookId }));
      assert.equal(refused.codeName, "FAILED_PRECONDITION");
      assert.match(refused.details, /signing secret cannot be opened: it is sealed with key [0-9a-f]{12}, which/);
    } finally {
      await stranger.close();
      await server.stop();
    }
  });
});

describe("sealing at start, key rotation and rekey", () => {
  const k1 = newKey();
  const k2 = newKey();
  let db: TestDatabase;
  let receiver: Receiver;
  const webhooks: { namespace: string; event: string; secret: string; id: string }[] = [];
  const previousSecret = `whsec_${randomBytes(32).toString("base64")}`;

  before(async () => {
    db = await createMigratedDatabase();
    receiver = await startReceiver();
  });
  after(async () => {
    await receiver.close();
    await db.drop();
  });

  it("webhooks registered by a server without a key are stored plain", async () => {
    const server = await startTestServer({}, db);
    try {
      for (const event of ["one", "two"]) {
        const r = await server.client.registerWebhook({ namespace: "old", event, url: `${receiver.url}/${event}` });
        webhooks.push({ namespace: "old", event, secret: r.signingSecret, id: r.webhookId });
      }
      // A rotation's previous secret, kept beside the current one.
      await db.sql`update webhook_registrations set previous_signing_secret = ${previousSecret} where id = ${webhooks[0]?.id ?? ""}`;
      await deliversVerified(server.client, receiver, webhooks[0] as (typeof webhooks)[0]);
    } finally {
      await server.stop();
    }
    const hits = await findInDatabase(db.sql, forbidden(k1));
    assert.ok(
      hits.some((h) => h.startsWith("public.webhook_registrations: a plain HMAC secret in 2 rows")),
      `the scan finds plain secrets (${hits.join("; ")})`,
    );
  });

  it("two servers starting at once with a key seal them all, current and previous, and they still deliver", async () => {
    const [a, b] = await Promise.all([startTestServer(keyEnv(k1), db), startTestServer(keyEnv(k1), db)]);
    try {
      assert.deepEqual(await findInDatabase(db.sql, forbidden(k1)), []);
      const rows = await storedSecrets(db.sql);
      const cipher = cipherOf(k1);
      for (const w of webhooks) {
        const row = rows.find((r) => r.id === w.id);
        assert.equal(sealedKeyId(row?.current ?? ""), keyId(k1));
        assert.equal(cipher.open(row?.current ?? ""), w.secret, "nothing lost");
      }
      const first = rows.find((r) => r.id === webhooks[0]?.id);
      assert.equal(cipher.open(first?.previous ?? ""), previousSecret);
      for (const w of webhooks) await deliversVerified(a.client, receiver, w);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it("a restart with a new key added first still delivers; rekey, while a server runs, re-seals everything under it", async () => {
    const server = await startTestServer(keyEnv(k2, k1), db);
    try {
      for (const w of webhooks) await deliversVerified(server.client, receiver, w);
      const r = await server.client.registerWebhook({ namespace: "old", event: "three", url: `${receiver.url}/three` });
      webhooks.push({ namespace: "old", event: "three", secret: r.signingSecret, id: r.webhookId });
      const before = await storedSecrets(db.sql);
      assert.equal(sealedKeyId(before.find((row) => row.id === r.webhookId)?.current ?? ""), keyId(k2));
      assert.equal(before.filter((row) => sealedKeyId(row.current) === keyId(k1)).length, 2);

      const env = { DATABASE_URL: db.url, ...keyEnv(k2, k1) };
      const first = await runRekey(env);
      assert.equal(first.code, 0, first.output);
      assert.match(first.output, new RegExp(`rekey: 3 re-sealed, 4 now sealed with key ${keyId(k2)}`));
      assert.match(first.output, /done; keys after the first may now be removed/);
      for (const [label, needle] of Object.entries({ ...forbidden(k1), ...forbidden(k2) })) {
        assert.ok(!first.output.includes(needle), `${label} in rekey's output`);
      }
      const after = await storedSecrets(db.sql);
      for (const row of after) {
        assert.equal(sealedKeyId(row.current), keyId(k2));
        if (row.previous !== null) assert.equal(sealedKeyId(row.previous), keyId(k2));
      }
      assert.equal(cipherOf(k2).open(after.find((row) => row.id === webhooks[0]?.id)?.previous ?? ""), previousSecret);

      const again = await runRekey(env);
      assert.equal(again.code, 0, again.output);
      assert.match(again.output, /rekey: 0 re-sealed, 4 now sealed/, "idempotent");
      assert.deepEqual(await storedSecrets(db.sql), after);
      await deliversVerified(server.client, receiver, webhooks[2] as (typeof webhooks)[0]);
    } finally {
      await server.stop();
    }
  });

  it("after rekey the old key can be removed, and every webhook delivers", async () => {
    const server = await startTestServer(keyEnv(k2), db);
    try {
      for (const w of webhooks) await deliversVerified(server.client, receiver, w);
      assert.deepEqual(await findInDatabase(db.sql, { ...forbidden(k1), ...forbidden(k2) }), []);
    } finally {
      await server.stop();
    }
  });

  it("a start without a key, or without the key that sealed them, stops with a message naming SECRETS_KEY", async () => {
    const env = { ...FAST_ENV, LOG_LEVEL: "info", DATABASE_URL: db.url };
    const none = await runServerToExit(env);
    assert.equal(none.code, 1, none.output);
    assert.match(none.output, /holds 4 signing secrets sealed with key [0-9a-f]{12}, and SECRETS_KEY is not set/);
    const k3 = newKey();
    const other = await runServerToExit({ ...env, ...keyEnv(k3, k1) });
    assert.equal(other.code, 1, other.output);
    assert.match(other.output, new RegExp(`sealed with key ${keyId(k2)}, which SECRETS_KEY does not hold`));
    // Nothing was changed by the refused starts.
    assert.ok((await storedSecrets(db.sql)).every((row) => sealedKeyId(row.current) === keyId(k2)));
  });

  it("rekey without a key, or without a database, exits 1 saying what is missing", async () => {
    const noKey = await runRekey({ DATABASE_URL: db.url });
    assert.equal(noKey.code, 1);
    assert.match(noKey.output, /SECRETS_KEY \(or SECRETS_KEY_FILE\) is not set/);
    const noDb = await runRekey(keyEnv(k2));
    assert.equal(noDb.code, 1);
    assert.match(noDb.output, /DATABASE_URL is not set/);
    const unknown = await rekey({ databaseUrl: db.url, keys: new KeyRing([newKey()]), out: () => undefined });
    assert.equal(unknown, 1, "secrets no key opens are reported, not dropped");
    assert.ok((await storedSecrets(db.sql)).every((row) => sealedKeyId(row.current) === keyId(k2)));
  });
});

describe("re-sealing concurrently", () => {
  const k1 = newKey();
  const k2 = newKey();
  let db: TestDatabase;
  let other: postgres.Sql;
  const secrets = new Map<string, string>();

  before(async () => {
    db = await createMigratedDatabase();
    other = postgres(db.url, { max: 1, onnotice: () => undefined });
    const rows = await db.sql<{ id: string; signing_secret: string }[]>`
      insert into webhook_registrations (namespace, event, url, signing_secret, previous_signing_secret)
      select 'bulk', 'e' || i, 'https://example.com/' || i, 'whsec_' || md5(i::text), case when i % 3 = 0 then 'whsk_' || md5(i::text) end
      from generate_series(1, 60) i
      returning id, signing_secret`;
    for (const row of rows) secrets.set(row.id, row.signing_secret);
  });
  after(async () => {
    await other.end({ timeout: 5 });
    await db.drop();
  });

  it("two passes at once, in small batches, seal each secret exactly once and lose none", async () => {
    const cipher = cipherOf(k1);
    const [a, b] = await Promise.all([
      resealPass(db.sql, cipher, { kind: "plain" }, 7),
      resealPass(other, cipher, { kind: "plain" }, 7),
    ]);
    assert.equal(a.resealed + b.resealed, 80, `60 current and 20 previous secrets (${JSON.stringify({ a, b })})`);
    assert.equal(a.unopenable + b.unopenable, 0);
    for (const row of await storedSecrets(db.sql)) {
      assert.equal(cipher.open(row.current), secrets.get(row.id));
      if (row.previous !== null) assert.match(cipher.open(row.previous), /^whsk_/);
    }
  });

  it("rekey never writes an old value over a secret rotated meanwhile (compare-and-set)", async () => {
    const [target] = await storedSecrets(db.sql);
    assert.ok(target);
    const rotated = `whsec_${randomBytes(32).toString("base64")}`;
    const lines: string[] = [];
    let running: Promise<number> | undefined;
    await other.begin(async (tx) => {
      await tx`select 1 from webhook_registrations where id = ${target.id} for update`;
      running = rekey({ databaseUrl: db.url, keys: new KeyRing([k2, k1]), out: (l) => lines.push(l), batchSize: 7 });
      // rekey read the row as it was, and now waits for its lock to write it.
      await eventually(
        async () => {
          const [waiting] = await db.sql`
            select 1 from pg_stat_activity where application_name = 'httpqueue-rekey' and wait_event_type = 'Lock'`;
          return waiting;
        },
        15_000,
        "rekey waiting on the locked row",
      );
      // A rotation by a server still sealing with the old key.
      await tx`update webhook_registrations set signing_secret = ${cipherOf(k1).seal(rotated)} where id = ${target.id}`;
    });
    assert.equal(await running, 0, lines.join("\n"));
    const row = (await storedSecrets(db.sql)).find((r) => r.id === target.id);
    assert.equal(cipherOf(k2).open(row?.current ?? ""), rotated, "the rotation stands, sealed under the new key");
    assert.equal(sealedKeyId(row?.current ?? ""), keyId(k2));
    assert.match(lines.join("\n"), /rekey: 80 re-sealed, 80 now sealed with key/);
  });
});

describe("re-sealing sends no secret to the database", () => {
  let db: TestDatabase;
  /** Every statement the client sends: its text and its parameters. */
  const sent: { text: string; params: unknown[] }[] = [];
  let watched: postgres.Sql;

  before(async () => {
    db = await createMigratedDatabase();
    watched = postgres(db.url, {
      max: 1,
      onnotice: () => undefined,
      debug: (_connection, text, params) => sent.push({ text, params }),
    });
  });
  after(async () => {
    await watched.end({ timeout: 5 });
    await db.drop();
  });

  /** The statements sent since `from` that hold one of `values`, in their text or a parameter. */
  const holding = (from: number, values: string[]) =>
    sent
      .slice(from)
      .filter(({ text, params }) => values.some((v) => text.includes(v) || params.some((p) => String(p).includes(v))));

  it("compares by digest: no plain secret, nor any stored value read, goes back as a parameter (sealing, then rekey)", async () => {
    const k1 = newKey();
    const k2 = newKey();
    const plain = (prefix: string) => `${prefix}${randomBytes(32).toString("base64")}`;
    const rows = await db.sql<{ id: string; current: string; previous: string | null }[]>`
      insert into webhook_registrations (namespace, event, url, signing_secret, previous_signing_secret)
      select 'digest', 'e' || i, 'https://example.com/' || i, s.current, s.previous
      from jsonb_to_recordset(${db.sql.json(
        Array.from({ length: 12 }, (_, i) => ({
          i,
          current: plain(i % 2 === 0 ? "whsec_" : "whsk_"),
          previous: i % 3 === 0 ? plain("whsec_") : null,
        })),
      )}) as s(i int, current text, previous text)
      returning id, signing_secret as current, previous_signing_secret as previous`;
    const plains = rows.flatMap((r) => [r.current, ...(r.previous === null ? [] : [r.previous])]);
    assert.equal(plains.length, 16);

    const sealing = sent.length;
    const sealed = await resealPass(watched, cipherOf(k1), { kind: "plain" }, 5);
    assert.deepEqual(sealed, { resealed: 16, changed: 0, unopenable: 0 });
    assert.ok(sent.length - sealing > 3, "the pass was watched");
    assert.deepEqual(holding(sealing, plains), [], "no plain secret sent");

    // rekey re-seals what another key sealed, and a plain secret written since.
    const [first] = rows;
    assert.ok(first);
    const late = plain("whsec_");
    await db.sql`update webhook_registrations set signing_secret = ${late} where id = ${first.id}`;
    const readBefore = (await storedSecrets(db.sql)).flatMap((r) => [
      r.current,
      ...(r.previous === null ? [] : [r.previous]),
    ]);
    const rekeying = sent.length;
    const rekeyed = await resealPass(watched, cipherOf(k2, k1), { kind: "not-under", keyId: keyId(k2) }, 5);
    assert.deepEqual(rekeyed, { resealed: 16, changed: 0, unopenable: 0 });
    assert.deepEqual(holding(rekeying, [...plains, late, ...readBefore]), [], "no stored value sent back");

    const byId = new Map((await storedSecrets(db.sql)).map((r) => [r.id, r]));
    for (const row of rows) {
      const stored = byId.get(row.id);
      assert.equal(cipherOf(k2).open(stored?.current ?? ""), row === first ? late : row.current);
      assert.equal(row.previous === null ? null : cipherOf(k2).open(stored?.previous ?? ""), row.previous);
    }
  });
});

describe("sealing at start while a server rotates", () => {
  let db: TestDatabase;
  let starter: postgres.Sql;
  let other: postgres.Sql;

  before(async () => {
    db = await createMigratedDatabase();
    starter = postgres(db.url, {
      max: 1,
      onnotice: () => undefined,
      connection: { application_name: "httpqueue-start-seal" },
    });
    other = postgres(db.url, { max: 1, onnotice: () => undefined });
  });
  after(async () => {
    await Promise.all([starter.end({ timeout: 5 }), other.end({ timeout: 5 })]);
    await db.drop();
  });

  it("seals a plain secret that a rotation moved to the previous column between the read and the write", async () => {
    const key = newKey();
    const cipher = cipherOf(key);
    const plain = `whsec_${randomBytes(32).toString("base64")}`;
    const rotated = `whsec_${randomBytes(32).toString("base64")}`;
    const [row] = await db.sql<{ id: string }[]>`
      insert into webhook_registrations (namespace, event, url, signing_secret)
      values ('start', 'e', 'https://example.com/start', ${plain}) returning id`;
    assert.ok(row);
    const logs: string[] = [];
    let starting: Promise<unknown> | undefined;
    await other.begin(async (tx) => {
      await tx`select 1 from webhook_registrations where id = ${row.id} for update`;
      starting = prepareSecrets({
        sql: starter,
        keys: new KeyRing([key]),
        logger: createLogger("info", { write: (line: string) => logs.push(line) }),
      });
      // The start read the row as it was, and now waits for its lock to write it.
      await eventually(
        async () => {
          const [waiting] = await db.sql`
            select 1 from pg_stat_activity where application_name = 'httpqueue-start-seal' and wait_event_type = 'Lock'`;
          return waiting;
        },
        15_000,
        "the start waiting on the locked row",
      );
      // A rotation by a running server that has the key: the plain secret becomes the previous one, as it was.
      await tx`
        update webhook_registrations set previous_signing_secret = signing_secret,
          previous_secret_expires_at = now() + interval '1 hour', signing_secret = ${cipher.seal(rotated)}
        where id = ${row.id}`;
    });
    await starting;
    const [stored] = (await storedSecrets(db.sql)).filter((r) => r.id === row.id);
    assert.ok(stored);
    assert.equal(cipher.open(stored.current), rotated, "the rotation stands");
    assert.equal(sealedKeyId(stored.previous ?? ""), keyId(key), "the previous secret is sealed too");
    assert.equal(cipher.open(stored.previous ?? ""), plain, "and nothing is lost");
    assert.deepEqual(await findInDatabase(db.sql, forbidden(key)), []);
    assert.ok(!logs.join("").includes(plain.slice(6)), "no secret in the log");
  });
});
