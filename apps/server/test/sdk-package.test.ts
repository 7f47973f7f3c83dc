import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { startTestServer, type TestServer } from "./helpers/server.js";

/**
 * The SDK as users get it: `pnpm pack` of @httpqueue/proto and @httpqueue/sdk,
 * installed with npm into an empty folder outside the workspace, used from a
 * plain ESM script against a real server, and type-checked from TypeScript.
 */

const run = promisify(execFile);
const PACKAGES = fileURLToPath(new URL("../../../packages/", import.meta.url));
const TSC = createRequire(import.meta.url).resolve("typescript/bin/tsc");

/** The pnpm running these tests (when they run through it), else the one on PATH. */
const execPath = process.env.npm_execpath ?? "";
const PNPM: [string, string[]] = /pnpm\.c?js$/.test(execPath) ? [process.execPath, [execPath]] : ["pnpm", []];

/** npm reads its own configuration; pnpm's script variables only confuse it. */
const npmEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.toLowerCase().startsWith("npm_")));

const SCRIPT = `
import { createServer } from "node:http";
import { Code, createClient, HttpQueueError, verifyWebhook, WebhookVerificationError } from "@httpqueue/sdk";
import { pushEventInTransaction } from "@httpqueue/sdk/sql";
import { generateSigningKey, signatureOf, verificationKeyOf } from "@httpqueue/sdk/signing";

let delivered;
const received = new Promise((resolve) => (delivered = resolve));
const receiver = createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    res.end("ok");
    delivered({ body: Buffer.concat(chunks), headers: req.headers });
  });
});
await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));

const client = createClient({ address: process.env.HTTPQUEUE_ADDR });
const { webhookId, signingSecret } = await client.registerWebhook({
  namespace: "packed",
  event: "ping",
  url: "http://127.0.0.1:" + receiver.address().port + "/hook",
});
const { eventId } = await client.pushEvent({ namespace: "packed", event: "ping", payload: { hello: "world" } });
const { body, headers } = await received;
const payload = verifyWebhook(body, headers, signingSecret);
let tampered = "accepted";
try {
  verifyWebhook(Buffer.from('{"hello":"mars"}'), headers, signingSecret);
} catch (err) {
  tampered = err instanceof WebhookVerificationError ? err.reason : String(err);
}
let notFound = "resolved";
try {
  await client.getWebhookStatus({ webhookId: "0190a0d4-0000-7000-8000-000000000000" });
} catch (err) {
  notFound = err instanceof HttpQueueError && err.code === Code.NOT_FOUND ? err.codeName : String(err);
}
// The signing entry point: the delivery's signature made again from the secret, and an ed25519 key pair.
const resigned = signatureOf(signingSecret, headers["webhook-id"], Number(headers["webhook-timestamp"]), body);
const pair = generateSigningKey("ed25519");
const status = await client.getWebhookStatus({ eventId });
await client.unregisterWebhook({ webhookId });
client.close();
receiver.close();
process.stdout.write(
  JSON.stringify({
    payload,
    tampered,
    notFound,
    deliveries: status.deliveries.length,
    sql: typeof pushEventInTransaction,
    resigned: headers["webhook-signature"].split(" ").includes(resigned),
    ed25519: verificationKeyOf(pair.secret) === pair.publicKey,
  }),
);
`;

const TYPED = `
import { createClient, DeliveryStatus, type HttpQueueClient, type Webhook } from "@httpqueue/sdk";
import { pushEventInTransaction, type SqlPushEventInput } from "@httpqueue/sdk/sql";
import { checkSigningSecret, generateSigningKey, signWebhook, type SignatureScheme } from "@httpqueue/sdk/signing";

const client: HttpQueueClient = createClient({ address: "127.0.0.1:50051", deadlineMs: 5000 });
export async function firstActive(): Promise<Webhook | undefined> {
  for await (const webhook of client.listWebhooksAsync({ namespace: "n" })) if (webhook.active) return webhook;
  return undefined;
}
export const succeeded: number = DeliveryStatus.DELIVERY_STATUS_SUCCEEDED;
// @ts-expect-error namespace is a string: the declarations are really in use
void client.pushEvent({ namespace: 1 });

// The SQL entry point's types stand alone: no driver is installed here.
export function pushWith(client: { query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }> }) {
  const input: SqlPushEventInput = { namespace: "n", event: "e", payload: { a: 1 }, ttlSeconds: 60 };
  return pushEventInTransaction(client, input);
}
// @ts-expect-error a number is no transaction
void pushEventInTransaction(1, { namespace: "n", event: "e", payload: {} });

// The signing entry point's types.
export const scheme: SignatureScheme = checkSigningSecret(generateSigningKey("hmac-sha256").secret);
export const header: string = signWebhook([generateSigningKey("ed25519").secret], "msg_1", 1700000000, new Uint8Array());
// @ts-expect-error only the two schemes
void generateSigningKey("rsa");
`;

describe("the packed SDK", () => {
  let server: TestServer;
  let dir: string;
  let app: string;

  before(async () => {
    server = await startTestServer();
    dir = await mkdtemp(join(tmpdir(), "httpqueue-sdk-package-"));
    for (const pkg of ["proto", "sdk"]) {
      await run(PNPM[0], [...PNPM[1], "pack", "--pack-destination", dir], { cwd: join(PACKAGES, pkg) });
    }
    const tarballs = (await readdir(dir)).filter((f) => f.endsWith(".tgz")).map((f) => join(dir, f));
    assert.equal(tarballs.length, 2, `two tarballs, got ${tarballs.join(", ")}`);
    app = join(dir, "app");
    await mkdir(app);
    await writeFile(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
    await run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", ...tarballs], {
      cwd: app,
      env: npmEnv,
    });
  });
  after(async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("installs into an empty folder and works there against a real server", async () => {
    await writeFile(join(app, "check.mjs"), SCRIPT);
    const { stdout } = await run(process.execPath, ["check.mjs"], {
      cwd: app,
      env: { PATH: process.env.PATH, HTTPQUEUE_ADDR: server.app.address },
      timeout: 60_000,
    });
    assert.deepEqual(JSON.parse(stdout), {
      payload: { hello: "world" },
      tampered: "no_matching_signature",
      notFound: "NOT_FOUND",
      deliveries: 1,
      sql: "function",
      resigned: true,
      ed25519: true,
    });
  });

  it("ships type declarations that TypeScript resolves through the exports map", async () => {
    await writeFile(join(app, "typed.ts"), TYPED);
    await writeFile(
      join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          module: "NodeNext",
          moduleResolution: "NodeNext",
          target: "ES2023",
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: [],
        },
        files: ["typed.ts"],
      }),
    );
    await run(process.execPath, [TSC, "-p", "tsconfig.json"], { cwd: app }).catch((err: unknown) => {
      const { stdout } = err as { stdout?: string };
      assert.fail(`tsc failed in the installed folder:\n${stdout ?? String(err)}`);
    });
  });
});
